"""The business-day calendar of Kazakhstan."""
