"""The audit log: recording events, the bus, pages and live streams."""
