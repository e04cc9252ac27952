"""Benchmarks of issue 4 (speed); `make bench` runs them all and writes bench/RESULTS.md. Not part of
`make test` (each script has a tiny smoke test in tests/test_bench.py so it cannot rot)."""

from catsdogs.blas_threads import use_one_blas_thread

use_one_blas_thread()  # before NumPy loads, as in the pipeline (stages/__init__.py)
