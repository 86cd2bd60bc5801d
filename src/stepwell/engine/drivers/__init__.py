"""Drivers: how the engine invokes handlers."""
