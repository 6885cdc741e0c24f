"""API keys: hashing, the key store, well-known development keys, roles."""
