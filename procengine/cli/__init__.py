"""The `procengine` command: serve, inspect, and the commands that drive a server over its API."""

from procengine.cli.main import main

__all__ = ["main"]
