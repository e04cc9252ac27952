"""The command line of every stage: its parser (one option per file, the parameters in --help) and run_cli."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from catsdogs.errors import DataError, ParamError
from catsdogs.pipeline.params import PARAMS_FILE, describe


def stage_parser(
    stage: str, description: str, *, params: type | None = None, paths: Mapping[str, str] | None = None
) -> argparse.ArgumentParser:
    """Command line of `python -m stages.<stage>`: the description; for a stage with `params` (its class
    declared with catsdogs.pipeline.params), --params to read another file than params.yaml and the list of its
    parameters after the options; one required `--name PATH` option per file the stage reads or writes
    (`paths`: option -> help), so that the stage's cmd in dvc.yaml names every one of its files and the
    code has no default path."""
    parser = argparse.ArgumentParser(
        prog=f"python -m stages.{stage}",
        description=description,
        epilog=describe(params) if params else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if params:
        parser.add_argument("--params", type=Path, default=PARAMS_FILE, help="parameters file (default: %(default)s)")
    for option, text in (paths or {}).items():
        parser.add_argument(option, type=Path, required=True, metavar="PATH", help=text)
    return parser


def run_cli(main: Callable[[Sequence[str] | None], None], argv: Sequence[str] | None = None) -> None:
    """Run a stage's main(); a ParamError or DataError ends it with the message and exit status 2."""
    try:
        main(argv)
    except (ParamError, DataError) as err:
        prog = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else "stage"
        print(f"{prog}: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
