"""The cats-vs-dogs library: data/, neuron/, evaluation/, pipeline/ (see each package)."""

import os

# The process that started this one, noted before the slow imports (NumPy, Pillow: about a second), so
# that pipeline.command_line.stop_with_parent can tell whether it died in the meantime (kill -9 of dvc).
STARTED_BY = os.getppid()
