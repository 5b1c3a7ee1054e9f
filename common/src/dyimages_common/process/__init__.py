"""What every long-running process shares: logging, metrics, exit codes, health probe, lifecycle."""
