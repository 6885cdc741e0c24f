"""The web console at /console: see and manage what agents remember, in the browser (docs/console.md)."""

from memory_service.api.console.app import mount_console

__all__ = ["mount_console"]
