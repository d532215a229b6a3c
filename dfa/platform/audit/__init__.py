"""The security-event log."""
