"""Benchmark: what train's live progress (stages.train.LiveProgress) costs a default run.

The train stage of a default run (params.yaml's train group, the features of `dvc repro`), called as
dvc.yaml calls it, in turns with and without the progress rewrites (live_interval None: only the final
write, as before live progress), `rounds` times each; its median time with and without them. The
measured difference is within the noise of a shared machine, so the table also gives the bound the
rewrites cannot exceed: (rewrites in a run) x (median time of one rewrite of the full history and the
metrics) / (run time). Target: at most 2 % of a default run. The final history, metrics and weights
of both kinds of run are compared byte for byte.

    python -m bench.live_progress [--rounds 3]     # after `dvc repro` (reads data/features/)
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

from bench.common import CACHE_DIR, median_seconds, table, verdict
from catsdogs.errors import DataError
from catsdogs.neuron.history import history_frame
from catsdogs.pipeline.config import TrainParams
from catsdogs.pipeline.dvc_files import stage_path
from stages.train import LIVE_INTERVAL, train, write_results

TARGET = 0.02  # the rewrites may cost at most 2 % of a run
OUTPUTS = ("--model", "--history", "--metrics")


def run(rounds: int = 3, params: TrainParams | None = None, dvc_yaml: Path = Path("dvc.yaml")) -> str:
    params = params or TrainParams.read(dvc_yaml.parent / "params.yaml")
    inputs = {
        name: dvc_yaml.parent / stage_path("train", f"--{name.replace('_', '-')}", dvc_yaml)
        for name in ("preprocessing", "train_features", "valid_features")
    }
    missing = [str(path) for path in inputs.values() if not path.exists()]
    if missing:
        raise DataError(f"{', '.join(missing)}: not found (run `dvc repro flatten_normalize` first)")
    folders = {kind: CACHE_DIR / "live_progress" / kind for kind in ("without", "with")}
    times: dict[str, list[float]] = {kind: [] for kind in folders}
    writes = []
    for _ in range(rounds):
        for kind, folder in folders.items():
            folder.mkdir(parents=True, exist_ok=True)
            outputs = {"model": folder / "weights.npz", "history": folder / "history.csv", "metrics": folder / "m.json"}
            interval = LIVE_INTERVAL if kind == "with" else None
            start = time.perf_counter()
            frame = train(params, **inputs, **outputs, progress=False, live_interval=interval)
            times[kind].append(time.perf_counter() - start)
        writes.append(1 + int(times["with"][-1] // LIVE_INTERVAL))  # at the first epoch, then each interval
    identical = all(
        (folders["with"] / name).read_bytes() == (folders["without"] / name).read_bytes()
        for name in ("weights.npz", "history.csv", "m.json")
    )
    scratch = CACHE_DIR / "live_progress" / "rewrite"
    scratch.mkdir(parents=True, exist_ok=True)
    rows = list(frame.to_numpy())  # what LiveProgress holds at the end of the run
    one_write = median_seconds(
        lambda: write_results(history_frame(rows), params, scratch / "history.csv", scratch / "m.json"), max(5, rounds)
    )
    without, with_live = statistics.median(times["without"]), statistics.median(times["with"])
    most_writes = max(writes)
    bound = most_writes * one_write / without
    lines = [
        ("train, final write only", f"{without:.2f} s", "", ""),
        (
            f"train, rewrites every {LIVE_INTERVAL:g} s",
            f"{with_live:.2f} s",
            f"{(with_live / without - 1) * 100:+.1f} % (noise of a shared machine)",
            "",
        ),
        (
            f"bound: {most_writes} rewrites x {one_write * 1000:.1f} ms ({len(frame)} history rows)",
            f"{most_writes * one_write:.3f} s",
            f"{bound * 100:.2f} %",
            f"<= {TARGET * 100:g} %: {verdict(bound <= TARGET)}",
        ),
    ]
    return "\n\n".join(
        [
            f"### Live progress of train ({params.epochs} epochs, median of {rounds} runs each, taking turns)",
            table(("what", "time", "cost", "target"), lines),
            f"Final history, metrics and weights the same bytes with and without the rewrites: {identical}.",
        ]
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.live_progress", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="runs of each kind (default 3)")
    print(run(parser.parse_args(argv).rounds))


if __name__ == "__main__":
    main()
