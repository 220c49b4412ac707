"""Shipped controller mappings (YAML), one file per device or app."""
