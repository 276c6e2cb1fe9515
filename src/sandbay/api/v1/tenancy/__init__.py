"""Routes of organizations and API keys."""
