"""The domain: what the service does with memories, entities, jobs and keys, independent of HTTP."""
