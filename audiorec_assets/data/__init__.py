"""Reading sources, ingest, the split and data-quality suites (no Dagster imports)."""
