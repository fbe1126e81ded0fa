"""Platform simulators."""
