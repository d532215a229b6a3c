"""The operations of custody."""
