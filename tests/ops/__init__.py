"""Tests of the ops bundle that need its tools (promtool, amtool, the dashboard builder, gunicorn)."""
