"""Stage 1, ingest: put the raw photo set in the --raw folder, in the Kaggle layout (cat.N.jpg, dog.N.jpg).

`ingest.source: synthetic` (the default) generates the embedded synthetic photo set, so the pipeline
runs with no download. A path inside the --external folder (data/external/) reads a real source
instead: a zip archive or a folder in one of the layouts of catsdogs/data/sources.py. Every file of a real source is decoded completely; the usable ones are
copied to the --raw folder under their Kaggle name, holding the image and nothing after it
(sources.keep_image_only: a JPEG or PNG byte for byte up to its end marker, any other format re-encoded
losslessly as PNG; resize_split turns any mode or format into RGB and applies the EXIF orientation), the others are skipped and listed with their reason in the
--skipped CSV. Counts go to the --metrics JSON. Every path comes from the command line (dvc.yaml's `cmd:`).

Memory, whatever the source holds (no header is believed; bytes are counted as they are inflated):
the main process holds the listing, about 1 KB an entry (at most archive.MAX_ENTRIES = 200,000 entries
and a 64 MiB directory: measured 188 MB for 200,000 entries); each of the min(jobs, usable cores,
files) worker processes copies one entry at a time to disk in 64 KiB pieces and decodes that copy,
which takes at most about 12 bytes per pixel allowed by max_pixels (measured worst: a progressive
CMYK JPEG) plus, in the worst case, the file's own size (<= MAX_FILE_BYTES = 64 MiB) for Pillow's
metadata. With B the size of an idle interpreter with NumPy and Pillow (about 40 MB):
    peak <= (workers + 1) * B + 1 KB * entries + workers * (12 * max_pixels + 64 MiB)
Measured (tests/test_ingest_memory.py, tests/measure_ingest.py): entries whose headers say 1,000 bytes
and which inflate to 64 MiB or to 1 GiB give the same peaks, 40 MB for the main process and 72 MB for
the largest worker (31 MB of it decoding a 4-megapixel PNG). Disk: at most one file per worker beyond
the kept ones.
"""

from __future__ import annotations

import csv
import functools
import shutil
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath

from tqdm import tqdm

from catsdogs.data import sources
from catsdogs.data.archive import EntryError
from catsdogs.data.labels import LABELS
from catsdogs.data.readers import Entry, FolderSource, ZipSource, open_source
from catsdogs.data.sources import REASONS, Outcome, check_image, plan
from catsdogs.data.synthetic import write_synthetic_dataset
from catsdogs.errors import DataError, ParamError, escape
from catsdogs.pipeline.atomic_files import atomic_path, save_json, temp_sibling
from catsdogs.pipeline.command_line import run_cli, stage_parser
from catsdogs.pipeline.config import SYNTHETIC, IngestParams
from catsdogs.pipeline.experiments import in_temporary_copy, untracked_message
from catsdogs.pipeline.processes import ordered_map


@dataclass(frozen=True)
class IngestReport:
    """What ingest did: the Kaggle names kept (sorted), every skipped file (sorted by entry name),
    and the layout it read (`synthetic`, `kaggle` or `microsoft`)."""

    layout: str
    kept: list[str]
    skipped: list[Outcome]

    def counts(self) -> dict:
        """The content of the --metrics JSON: usable images per class, and the number skipped (their
        reasons are in the --skipped CSV and the summary line, not metrics)."""
        usable = {name: sum(n.startswith(f"{name}.") for n in self.kept) for name in LABELS}
        return {"usable": {**usable, "total": len(self.kept)}, "skipped": len(self.skipped)}

    def reasons(self) -> dict[str, int]:
        """Skipped files per reason, in the order of REASONS (reasons with none left out)."""
        counts = Counter(o.reason for o in self.skipped)
        return {reason: counts[reason] for reason in REASONS if counts[reason]}

    def summary(self, source: str) -> str:
        """The one-line summary printed at the end of the stage (after "ingest: ")."""
        usable = self.counts()["usable"]
        reasons = ", ".join(f"{n} {r}" for r, n in self.reasons().items())
        return (
            f"{usable['total']} usable images ({usable['cat']} cats, {usable['dog']} dogs), "
            f"{len(self.skipped)} skipped{f' ({reasons})' if reasons else ''} from {source}"
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


def check_source_resolved(value: str, external: Path) -> None:
    """A ParamError when the real source `value` (checked by check_source), once its links are resolved,
    is not inside the real `external` folder: DVC hashes only what lies in that folder, so photos behind a
    link out of it would be read but never tracked (`dvc status` up to date while they change)."""
    try:
        resolved = Path(value).resolve(strict=True)
    except (OSError, RuntimeError):  # missing or a link loop: open_source says which
        return
    root = Path(external).resolve()  # a missing folder (and its links) too: nothing can lie inside it
    if root not in resolved.parents:
        raise ParamError(
            f"params.yaml: ingest.source = {escape(value)} leads through a link to {escape(str(resolved))}, outside "
            f"{escape(str(external))}/; DVC only tracks what lies inside it: move or copy the source into "
            f"{escape(str(external))}/ (no link)"
        )


def _copy_and_check(
    item: tuple[Entry, str], source: FolderSource | ZipSource, out_dir: Path, max_pixels: int
) -> tuple[str, str] | None:
    """Copy one entry to `out_dir`/<its Kaggle name> and decode that copy; remove it and return
    (reason, detail) when it is not usable, else None. Runs in a worker process: what it holds is a
    few CHUNKs of the file (bounded by MAX_FILE_BYTES on disk) and the decoded image (bounded by
    max_pixels), never the archive's word for either."""
    entry, name = item
    path = out_dir / name
    try:
        with open(path, "xb") as out:  # "x": each Kaggle name belongs to one entry (plan)
            size = source.copy(entry, out, sources.MAX_FILE_BYTES)
        verdict = ("empty", "0 bytes") if size == 0 else check_image(path, max_pixels)
        if verdict is None:
            sources.keep_image_only(path)
    except EntryError as err:
        verdict = (err.reason, err.detail)
    if verdict:
        path.unlink(missing_ok=True)
    return verdict


def ingest_source(source_path: Path, out_dir: Path, max_pixels: int, jobs: int, progress: bool = True) -> IngestReport:
    """Copy the usable images of a real source into `out_dir` (which must exist) under Kaggle names.

    Each file is copied and decoded by one of at most `jobs` worker processes (common.ordered_map),
    so memory does not grow with the number or the size of the files (module docstring). The result does
    not depend on `jobs` nor on the order the source lists its files.
    """
    source = open_source(source_path)
    layout, skipped, to_check = plan(source.entries())
    check = functools.partial(_copy_and_check, source=source, out_dir=out_dir, max_pixels=max_pixels)
    kept = []
    for (entry, name), verdict in tqdm(
        ordered_map(check, to_check, jobs),
        total=len(to_check),
        desc=f"ingest: {source_path}",
        unit="file",
        disable=not progress,
    ):
        if verdict:
            skipped.append(Outcome(entry.name, *verdict, index=entry.index))  # type: ignore[misc]
        else:
            kept.append(name)
    return IngestReport(layout, sorted(kept), sorted(skipped, key=Outcome.key))


def ingest(params: IngestParams, out_dir: Path, progress: bool = True) -> IngestReport:
    """Fill `out_dir` with the photo set (synthetic or from `params.source`); return the report.

    Builds the set in a temporary sibling folder and swaps it in at the end, so an interrupted run or
    a source with no usable image of a class never leaves a partial `out_dir` behind (a killed run's
    folder is removed by the next run: common.temp_sibling).
    """
    out_dir = Path(out_dir)
    staging = temp_sibling(out_dir, folder=True)
    try:
        if params.source == SYNTHETIC:
            paths = write_synthetic_dataset(staging, params.n_per_class, params.seed, progress=progress)
            report = IngestReport(SYNTHETIC, sorted(p.name for p in paths), [])
        else:
            report = ingest_source(Path(params.source), staging, params.max_pixels, params.jobs, progress)
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


def spreadsheet_safe(cell: str) -> str:
    """`cell` with a leading apostrophe when a spreadsheet would run it as a formula (it starts with
    = + - @, tab or CR: OWASP's CSV injection rule) or when it starts with an apostrophe itself, so
    that stripping one leading apostrophe always gives the cell back."""
    return f"'{cell}" if cell[:1] in ("=", "+", "-", "@", "\t", "\r", "'") else cell


def write_report(report: IngestReport, metrics_file: Path, skipped_file: Path) -> None:
    """Write the counts (JSON) and the list of skipped files (CSV: entry, index, reason, detail; names
    and details through `escape` and `spreadsheet_safe`; index: the entry's position in a zip archive,
    empty for a folder)."""
    save_json(metrics_file, report.counts())
    with atomic_path(skipped_file) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(("entry", "index", "reason", "detail"))
        for o in report.skipped:
            index = "" if o.index is None else o.index
            writer.writerow((spreadsheet_safe(escape(o.entry)), index, o.reason, spreadsheet_safe(escape(o.detail))))


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
    if check_source(params.source, args.external) != SYNTHETIC:
        if not Path(params.source).exists() and in_temporary_copy():
            raise DataError(untracked_message(escape(params.source)))
        check_source_resolved(params.source, args.external)
    report = ingest(params, args.raw)
    write_report(report, args.metrics, args.skipped)
    print(f"ingest: {report.summary(params.source)}; skipped files listed in {args.skipped}")


if __name__ == "__main__":
    run_cli(main)
