"""Routes inside an environment: exec, processes, PTY, files, logs, metrics."""
