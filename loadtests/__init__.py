"""Locust capacity suite for the memory service (docs/capacity.md)."""
