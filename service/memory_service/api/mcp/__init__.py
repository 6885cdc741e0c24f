"""MCP (Model Context Protocol) surface: `/mcp` on the service, and the stdio bridge to it.

Nothing is imported here: the bridge (`memory-service mcp-stdio`) runs on a desktop and must not
load the service's backends.
"""
