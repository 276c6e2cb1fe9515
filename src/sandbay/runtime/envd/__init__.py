"""The environment agent (envd) and the channel to it: docs/envd.md."""
