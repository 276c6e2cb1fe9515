"""Routes of environments and warm pools."""
