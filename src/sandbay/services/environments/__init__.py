"""Environments: records, lifecycle requests, the one door for state changes,
activity, warm pools."""
