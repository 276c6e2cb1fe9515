"""The SSH gateway: server, sessions, SFTP, host keys."""
