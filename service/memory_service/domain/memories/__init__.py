"""Memories: the tenant-scoped engine over mem0, scopes, filters and the add command."""
