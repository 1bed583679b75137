"""What every layer runs on: the clock, logs, metrics, cancellation, the event loop."""
