"""Longhaul training."""
