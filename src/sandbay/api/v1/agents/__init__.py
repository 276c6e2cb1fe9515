"""Routes of agent runs and model providers."""
