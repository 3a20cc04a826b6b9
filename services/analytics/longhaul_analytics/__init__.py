"""Longhaul analytics."""
