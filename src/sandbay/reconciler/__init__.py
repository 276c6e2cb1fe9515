"""Background loops that drive every environment toward its desired state."""
