"""The embedding service's contract: its wire format, its client, and what a client makes of its answers."""
