"""Inference with Ollama (fact extraction, embeddings, start-up checks) and asynchronous add jobs.

See docs/inference.md for how it works and how to run its tests against a real Ollama.
"""
