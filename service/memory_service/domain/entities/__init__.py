"""Entities: write-time extraction (what a memory mentions) and graph reads."""
