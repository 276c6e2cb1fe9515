"""How one agent run is carried out: an agent CLI, or the built-in loop."""
