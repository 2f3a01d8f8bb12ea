"""API keys and their roles."""
