"""Thin routes: parse, call one engine function, wrap in the envelope."""
