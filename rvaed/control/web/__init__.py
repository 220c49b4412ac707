"""The web page: the daemon's device in a browser (server, snapshot, shipped static files)."""
