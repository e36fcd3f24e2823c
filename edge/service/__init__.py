"""The service: the daemon's loop, its signals and its systemd notifications."""
