"""HTTP layer: envelope, error mapping, dependencies, thin routes."""
