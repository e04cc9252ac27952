"""The pipeline's five stages, one script each (see dvc.yaml): command line and file I/O over the
catsdogs library.

Every stage runs as `python -m stages.NAME`, so this runs first, before NumPy is imported: BLAS runs
single-threaded unless the caller set OPENBLAS_NUM_THREADS / OMP_NUM_THREADS (catsdogs/blas_threads.py
says why).
"""

from catsdogs.blas_threads import use_one_blas_thread

use_one_blas_thread()
