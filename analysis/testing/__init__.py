"""Helpers that tests and benchmarks share; the analysis itself never imports them.

They live in the package so that tests/ and benchmarks/ each import them from here rather
than from each other's folder.
"""
