"""The small core every stage runs: record schemas and table I/O, atomic files, params and their schema, the stage wrapper, MLflow tracking, logging, process ranks."""
