"""Run every benchmark and write bench/RESULTS.md (machine, command, tables). `make bench` runs this.

    python -m bench.run_all            # the full set, about 25 minutes on 2 cores: bench/RESULTS.md
    python -m bench.run_all --quick    # smaller sizes, a few minutes: bench/.cache/RESULTS-partial.md
    python -m bench.run_all --only epoch decode    # some of them: bench/.cache/RESULTS-partial.md

Only the full set writes the committed record bench/RESULTS.md; a quick or partial run (a look, not the
record) goes to the git-ignored bench/.cache/ unless --out says otherwise.
"""

from __future__ import annotations

import argparse
import datetime
import time
from collections.abc import Sequence
from pathlib import Path

from bench import decode, epoch, full_size, incremental, live_progress, memory_disk, stage_decode, time_to_accuracy
from bench.common import CACHE_DIR, machine
from catsdogs.pipeline.atomic_files import atomic_path

RESULTS = Path("bench/RESULTS.md")
PARTIAL = CACHE_DIR / "RESULTS-partial.md"  # --quick or --only: never overwrites the record
NOTES = Path("bench/NOTES.md")  # hand-written reading of the numbers, appended when present
FULL = {
    "decode": lambda: decode.run((2000, 25000), repeats=3),
    "epoch": lambda: epoch.run(20000, 5000, repeats=5),
    "time_to_accuracy": lambda: time_to_accuracy.run((2000, 5000)),
    "memory_disk": lambda: memory_disk.run(25000),
    "incremental": lambda: incremental.run(5000),
    "full_size": lambda: full_size.run(rounds=3),
    "stage_decode": lambda: stage_decode.run(rounds=3),
    "live_progress": lambda: live_progress.run(rounds=3),  # reads the features of `dvc repro`
}
QUICK = {
    "decode": lambda: decode.run((2000,), repeats=1),
    "epoch": lambda: epoch.run(4000, 1000, repeats=3),
    "time_to_accuracy": lambda: time_to_accuracy.run((2000,)),
    "memory_disk": lambda: memory_disk.run(2000),
    "incremental": lambda: incremental.run(500),
}


def run(quick: bool, only: Sequence[str], out: Path) -> str:
    """Run the chosen benchmarks, print each section, write them all to `out` and return the text."""
    chosen = QUICK if quick else FULL
    start = time.perf_counter()
    at_start = machine()
    sections = []
    for name, function in chosen.items():
        if only and name not in only:
            continue
        began = time.perf_counter()
        sections.append(function() + f"\n\n_{name}: {time.perf_counter() - began:.0f} s_")
        print(sections[-1], flush=True)
    command = "make bench" if not quick else "make bench BENCH_ARGS=--quick"
    text = "\n\n".join(
        [
            "# Benchmark results (issue 4: speed)",
            f"Written by `python -m bench.run_all{' --quick' if quick else ''}` (`{command}`) on "
            f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, in {time.perf_counter() - start:.0f} s.",
            f"Machine at the start: {at_start}.\nAt the end: {machine()}.",
            "Ratios compare methods timed in the same run. The machine is shared (see the load averages): "
            "absolute times are noisy, ratios less so.",
            *sections,
            *([NOTES.read_text().strip()] if NOTES.exists() and not only else []),
        ]
    )
    with atomic_path(out) as tmp:
        tmp.write_text(text + "\n")
    return text


def default_out(quick: bool, only: Sequence[str]) -> Path:
    """bench/RESULTS.md for the full set, PARTIAL for a quick or partial run."""
    return PARTIAL if quick or only else RESULTS


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run_all", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a few minutes)")
    parser.add_argument("--only", nargs="+", choices=sorted(FULL), default=(), help="run only these benchmarks")
    parser.add_argument(
        "--out", type=Path, help=f"Markdown file to write (default: {RESULTS} for the full set, {PARTIAL} otherwise)"
    )
    args = parser.parse_args(argv)
    out = args.out or default_out(args.quick, args.only)
    run(args.quick, args.only, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
