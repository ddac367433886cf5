"""The web interface's package."""
