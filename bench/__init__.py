"""Benchmarks of the service against the raw engine; `python -m bench` writes BENCHMARKS.md."""
