"""Benchmarks of awfdrs against the real stack; run them with `make bench` (`--quick` in CI)."""
