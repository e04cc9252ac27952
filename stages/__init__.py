"""The pipeline's stages, one module each (see dvc.yaml), plus `common` (shared helpers) and `predict`.

BLAS runs single-threaded unless the caller set OPENBLAS_NUM_THREADS / OMP_NUM_THREADS: the products
here are matrix-vector, limited by memory bandwidth, and a second BLAS thread gains little but can be
40x slower on a busy machine (measured: 0.19 ms vs 8 ms for a 160 x 12288 float32 X @ w with the
other core loaded). One thread also makes float sums, hence the weights, independent of core count.
This must run before NumPy is first imported, which importing any stage module guarantees.
"""

import os

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

# The process that started this one, noted before the slow imports (NumPy, Pillow: about a second), so
# that common.die_with_parent can tell whether it died in the meantime (kill -9 of `dvc repro`).
STARTED_BY = os.getppid()
