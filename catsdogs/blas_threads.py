"""One BLAS thread, asked for explicitly by each entry point (stages/__init__.py, tests/conftest.py, bench/).

The products here are matrix-vector, limited by memory bandwidth: a second BLAS thread gains little but
can be much slower on a busy machine, and one thread makes float sums, hence the weights, independent
of the core count. The environment variables only take effect before NumPy is first imported; a caller
that has NumPy loaded already limits threads with threadpoolctl instead (catsdogs/predict.py).
Importing this module changes nothing.
"""

import os

BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def use_one_blas_thread() -> None:
    """Set each BLAS thread-count variable to 1 unless the caller set it; call before importing NumPy."""
    for variable in BLAS_THREAD_VARIABLES:
        os.environ.setdefault(variable, "1")
