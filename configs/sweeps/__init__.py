"""The sweeps behind the results tables (``--config=sweeps/ring`` once installed)."""
