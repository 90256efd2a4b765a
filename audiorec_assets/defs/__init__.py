"""The Dagster layer: partitions, resources, assets, checks and automation over the science core."""
