"""Runtime backends: each one is an `encoder(x, t) -> x0_hat` callable over numpy arrays plus its ModelConfig."""
