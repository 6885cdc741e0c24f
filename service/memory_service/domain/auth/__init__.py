"""API keys: generation, hashing, roles and the seed's well-known development keys."""
