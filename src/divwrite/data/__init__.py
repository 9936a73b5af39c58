"""The data stages' library: sources and ingest, filtering, pairing, the Great Expectations gates, the dataset card, and the built-in corpus."""
