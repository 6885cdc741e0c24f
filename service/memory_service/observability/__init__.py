"""Metrics, traces and logs: what operators see."""
