"""Adapters for external parties of the platform: the anti-fraud centre and the identification data exchange centre."""
