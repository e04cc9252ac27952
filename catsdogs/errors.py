"""The two errors a stage ends with one clear line and exit status 2 (catsdogs.pipeline.command_line.run_cli)."""


class ParamError(ValueError):
    """A value in params.yaml that a stage cannot use; the message names the key and what is allowed."""


class DataError(ValueError):
    """Input data a stage cannot use (e.g. no usable image of one class)."""
