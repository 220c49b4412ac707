"""Shipped configuration: the daemon's defaults, drum kits and drum-machine output maps."""
