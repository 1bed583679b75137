"""The contract the front door, the CLI and the client share: views, problems, the service protocol."""
