"""timm adapter: ``catalog`` (plain data, imported by the host) and ``trainer`` (child env only)."""
