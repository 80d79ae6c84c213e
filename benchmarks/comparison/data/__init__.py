"""Data loaders for the benchmark tasks."""
