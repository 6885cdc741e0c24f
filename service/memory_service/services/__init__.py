"""Application services: the container opened by the lifespan, background workers (jobs, graph
projection), health monitoring and rate limiting, and the assembly of the engine from settings."""
