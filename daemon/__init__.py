"""clientlove: the engine (pure core) and the service around it."""
