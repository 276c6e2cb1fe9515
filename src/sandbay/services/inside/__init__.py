"""Inside a running environment: exec, processes, files, logs, metrics."""
