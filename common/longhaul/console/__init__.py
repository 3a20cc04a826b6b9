"""The web console: one page that shows a caller their jobs on every service, served with a
same-origin proxy to the services' APIs (docs/console.md)."""

from longhaul.console.app import ConsoleConfig, create_app

__all__ = ["ConsoleConfig", "create_app"]
