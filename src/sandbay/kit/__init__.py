"""Helpers that know nothing of sandbay: the clock, background loops."""
