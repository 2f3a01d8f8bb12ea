"""Benchmarks (``make bench``: ``python -m bench.ingest``) and the load and comparison scripts beside it."""
