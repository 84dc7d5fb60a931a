"""Shared mechanics for every Omni service: one way to configure, store, serve, publish,
consume."""
