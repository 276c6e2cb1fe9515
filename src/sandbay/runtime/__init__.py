"""Container engines behind one small protocol (`RuntimeProvider`)."""
