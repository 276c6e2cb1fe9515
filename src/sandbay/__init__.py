"""sandbay: a self-hostable platform for isolated cloud environments."""

__version__ = "0.1.0"
