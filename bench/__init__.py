"""Benchmarks of issue 4 (speed); `make bench` runs them all and writes bench/RESULTS.md. Not part of
`make test` (each script has a tiny smoke test in tests/test_bench.py so it cannot rot)."""

import stages  # noqa: F401  (pins BLAS to one thread before NumPy loads, as in the pipeline)
