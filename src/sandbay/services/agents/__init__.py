"""AI coding agents: model providers, runs and their drivers, OpenClaw instances."""
