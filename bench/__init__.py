"""Benchmarks: `make bench` → docs/benchmarks.md."""
