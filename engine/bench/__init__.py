"""Benchmark suites (`python -m engine.bench`), the KV-cache sweep and their shared helpers."""
