"""The only writers of data: each change commits, then publishes its event."""
