"""Stage 1, ingest: put the raw photo set in the --raw folder, in the Kaggle layout (cat.N.jpg, dog.N.jpg).

`ingest.source: synthetic` (the default) generates the embedded synthetic photo set, so the pipeline
runs with no download. A path inside the --external folder (data/external/) reads a real source
instead: a zip archive or a folder in one of the layouts of stages/sources.py. Every file of a real source is decoded completely; the usable ones are
copied byte for byte to the --raw folder under their Kaggle name (resize_split turns any mode or format
into RGB and applies the EXIF orientation), the others are skipped and listed with their reason in the
--skipped CSV. Counts go to the --metrics JSON. Every path comes from the command line (dvc.yaml's `cmd:`).
"""
from __future__ import annotations

import csv
import functools
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath
from typing import Sequence

from PIL import Image
from tqdm import tqdm

from stages.common import (
    LABELS,
    DataError,
    atomic_path,
    ordered_map,
    run_cli,
    save_json,
    stage_parser,
    usable_cores,
)
from stages.params import Custom, Number, ParamError, param, stage_params
from stages.sources import REASONS, Outcome, check_image, open_source, plan, read_checked
from stages.synthetic import write_synthetic_dataset

SYNTHETIC = "synthetic"


def is_text(key: str, value) -> str:
    if not isinstance(value, str) or not value:
        raise ParamError(f"params.yaml: {key} = {value!r} is not allowed, expected `{SYNTHETIC}` or a path")
    return value


@stage_params("ingest")
class IngestParams:
    source: str = param(
        SYNTHETIC, Custom(is_text, f"`{SYNTHETIC}` or a path under the --external folder"), "where the photos come from"
    )
    n_per_class: int = param(1000, Number(low=1, high=1_000_000, integer=True), "synthetic images per class")
    seed: int = param(0, Number(low=0, integer=True), "seed of the synthetic set")
    # resize_split opens the kept files with Pillow's default bound: stay within it.
    max_pixels: int = param(
        25_000_000, Number(low=1, high=Image.MAX_IMAGE_PIXELS, integer=True), "real sources: pixel cap per image"
    )
    jobs: int = param(0, Number(low=0, integer=True), "real sources: decoding processes; 0 = all cores", tracked=False)


@dataclass(frozen=True)
class IngestReport:
    """What ingest did: the Kaggle names kept (sorted), every skipped file (sorted by entry name),
    and the layout it read (`synthetic`, `kaggle` or `microsoft`)."""

    layout: str
    kept: list[str]
    skipped: list[Outcome]

    def counts(self) -> dict:
        """The content of metrics/ingest.json: usable images per class, skipped files per reason."""
        usable = {name: sum(n.startswith(f"{name}.") for n in self.kept) for name in LABELS}
        skipped = {reason: sum(o.reason == reason for o in self.skipped) for reason in REASONS}
        return {
            "usable": {**usable, "total": len(self.kept)},
            "skipped": {**skipped, "total": len(self.skipped)},
        }

    def summary(self, source: str) -> str:
        """The one-line summary printed at the end of the stage (after "ingest: ")."""
        counts = self.counts()
        usable, skipped = counts["usable"], counts["skipped"]
        reasons = ", ".join(f"{n} {r}" for r, n in skipped.items() if n and r != "total")
        return (
            f"{usable['total']} usable images ({usable['cat']} cats, {usable['dog']} dogs), "
            f"{skipped['total']} skipped{f' ({reasons})' if reasons else ''} from {source}"
            f"{f' ({self.layout} layout)' if self.layout != SYNTHETIC else ''}"
        )


def check_source(value, external: PurePath) -> str:
    """`synthetic`, or a relative path inside the folder `external` (data/external/, which dvc.yaml
    tracks, so that DVC reruns ingest when the archive changes); else a ParamError."""
    external = PurePosixPath(PurePath(external).as_posix())
    allowed = f"expected `{SYNTHETIC}` or a path under {external}/ (e.g. {external}/train.zip)"
    if value == SYNTHETIC:
        return value
    if not isinstance(value, str) or not value:
        raise ParamError(f"params.yaml: ingest.source = {value!r} is not allowed, {allowed}")
    parts = PurePosixPath(value.replace("\\", "/")).parts
    if ".." in parts or len(parts) <= len(external.parts) or parts[: len(external.parts)] != external.parts:
        raise ParamError(f"params.yaml: ingest.source = {value!r} is not allowed, {allowed}")
    return value


def _verdict(item: tuple, max_pixels: int) -> tuple[str, str] | None:
    """Skip reason of one (entry, name, bytes, read problem) item, or None if the image is usable."""
    _, _, data, problem = item
    return problem or check_image(data, max_pixels)


def ingest_source(source_path: Path, out_dir: Path, max_pixels: int, jobs: int, progress: bool = True) -> IngestReport:
    """Copy the usable images of a real source into `out_dir` (which must exist) under Kaggle names.

    Reads and decodes one file at a time per process (at most `jobs` processes, a bounded number of
    files in flight), so memory does not grow with the number of images. The result does not depend
    on `jobs` nor on the order the source lists its files.
    """
    source = open_source(source_path)
    try:
        layout, skipped, to_check = plan(source.entries())
        items = ((entry, name, *read_checked(source, entry)) for entry, name in to_check)
        results = ordered_map(functools.partial(_verdict, max_pixels=max_pixels), items, jobs)
        kept = []
        for (entry, name, data, _), verdict in tqdm(
            results, total=len(to_check), desc=f"ingest: {source_path}", unit="file", disable=not progress
        ):
            if verdict:
                skipped.append(Outcome(entry.name, reason=verdict[0], detail=verdict[1]))
            else:
                (out_dir / name).write_bytes(data)
                kept.append(name)
    finally:
        source.close()
    return IngestReport(layout, sorted(kept), sorted(skipped, key=lambda o: o.entry))


def ingest(params: IngestParams, out_dir: Path, progress: bool = True) -> IngestReport:
    """Fill `out_dir` with the photo set (synthetic or from `params.source`); return the report.

    Builds the set in a temporary sibling folder and swaps it in at the end, so an interrupted run or
    a source with no usable image of a class never leaves a partial `out_dir` behind.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".tmp-{out_dir.name}.", dir=out_dir.parent))
    try:
        if params.source == SYNTHETIC:
            paths = write_synthetic_dataset(staging, params.n_per_class, params.seed, progress=progress)
            report = IngestReport(SYNTHETIC, sorted(p.name for p in paths), [])
        else:
            jobs = params.jobs or usable_cores()
            report = ingest_source(Path(params.source), staging, params.max_pixels, jobs, progress)
        usable = report.counts()["usable"]
        for name in LABELS:
            if usable[name] == 0:
                raise DataError(f"{params.source}: no usable {name} image; {report.summary(params.source)}")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report


def write_report(report: IngestReport, metrics_file: Path, skipped_file: Path) -> None:
    """Write the counts (JSON) and the per-file list of skipped files (CSV: entry, reason, detail)."""
    save_json(metrics_file, report.counts())
    with atomic_path(skipped_file) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("entry", "reason", "detail"))
        writer.writerows((o.entry, o.reason, o.detail) for o in report.skipped)


def main(argv: Sequence[str] | None = None) -> None:
    parser = stage_parser(
        "ingest",
        "Write the raw cat/dog photo set (Kaggle layout: cat.N.jpg, dog.N.jpg) to --raw, generated "
        "(ingest.source: synthetic) or read from a zip or folder inside --external; counts to --metrics, "
        "skipped files with their reason to --skipped.",
        paths={
            "--external": "folder of real sources, ingest.source's (in)",
            "--raw": "folder of the photo set (out)",
            "--metrics": "counts .json (out)",
            "--skipped": "skipped files .csv (out)",
        },
        params=IngestParams,
    )
    args = parser.parse_args(argv)
    params = IngestParams.read(args.params)
    check_source(params.source, args.external)
    report = ingest(params, args.raw)
    write_report(report, args.metrics, args.skipped)
    print(f"ingest: {report.summary(params.source)}; skipped files listed in {args.skipped}")


if __name__ == "__main__":
    run_cli(main)
