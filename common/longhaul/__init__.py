"""The Longhaul kit: what every service shares. Imported by services, never run on its own."""

from longhaul.config import KitSettings, SettingsError, load_settings
from longhaul.runtime import Service
from longhaul.spec import ServiceSpec

__all__ = ["KitSettings", "Service", "ServiceSpec", "SettingsError", "load_settings"]
