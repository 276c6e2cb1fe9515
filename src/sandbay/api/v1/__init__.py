"""The native API's routes, by capability."""
