"""Benchmark suites (`python -m engine.bench`), the KV-cache sweep and their shared helpers."""
from .runner import SUITES, format_table, run_suite
from .suites import GEN_CASES, case_problems
