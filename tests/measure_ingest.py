"""Peak memory of ingest on a source, measured in a fresh process (tests/test_ingest_memory.py, or by
hand). `build` writes the hostile archive those tests use; `measure` prints JSON {"main": kB,
"workers": kB, "kept": n, "skipped": {reason: n}}:

    python -m tests.measure_ingest build hostile.zip --bomb-mib 1024
    python -m tests.measure_ingest measure hostile.zip out/ --jobs 2

main: the peak resident set of the ingest process itself (VmHWM); workers: the largest peak resident
set of any worker process it started (getrusage RUSAGE_CHILDREN ru_maxrss, once they were joined).
"""

import argparse
import io
import json
import resource
import zipfile
from pathlib import Path

from PIL import Image

from stages.ingest import ingest_source
from tests.ingest_cases import BLUE, RED, jpeg
from tests.zip_forge import Raw, forge, zeros

PNG_SIDE = 2000  # the largest image of the hostile archive: 2000 x 2000 RGBA, kept


def hostile_entries(bomb: int) -> list[Raw]:
    """Lying deflate and bzip2 headers over `bomb` zero bytes, a header claiming 4 GiB, six honest
    48 MiB entries, 40 entries sharing one entry's data, and a 4-megapixel PNG among valid photos."""
    deflated, deflated_crc = zeros(zipfile.ZIP_DEFLATED, bomb)
    bzipped, bzipped_crc = zeros(zipfile.ZIP_BZIP2, bomb)
    honest, honest_crc = zeros(zipfile.ZIP_DEFLATED, 48 * 2**20)
    png = io.BytesIO()
    Image.new("RGBA", (PNG_SIDE, PNG_SIDE), (*RED, 200)).save(png, "PNG")
    return [
        Raw(b"train/cat.0.jpg", jpeg(RED)),
        Raw(b"train/dog.0.jpg", jpeg(BLUE)),
        Raw(b"train/cat.1.jpg", body=deflated, crc=deflated_crc, file_size=1000, method=zipfile.ZIP_DEFLATED),
        Raw(b"train/cat.2.jpg", body=bzipped, crc=bzipped_crc, file_size=1000, method=zipfile.ZIP_BZIP2),
        Raw(b"train/cat.3.jpg", jpeg(RED), file_size=2**32 - 1),
        *(Raw(f"train/dog.{i}.jpg".encode(), body=honest, crc=honest_crc, file_size=48 * 2**20) for i in range(1, 7)),
        Raw(b"train/cat.4.jpg", png.getvalue(), zipfile.ZIP_STORED),
        Raw(b"train/cat.5.jpg", body=honest, crc=honest_crc, file_size=48 * 2**20),
        *(Raw(f"train/cat.{i}.jpg".encode(), same_data_as=12) for i in range(10, 50)),  # all at cat.5's data
    ]


def benign_entries() -> list[Raw]:
    """The baseline: two small valid photos."""
    return hostile_entries(0)[:2]


def peak_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def main() -> None:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build")
    build.add_argument("archive", type=Path)
    build.add_argument("--bomb-mib", type=int, default=64)
    build.add_argument("--benign", action="store_true", help="the baseline archive instead")
    measure = commands.add_parser("measure")
    measure.add_argument("source", type=Path)
    measure.add_argument("out", type=Path)
    measure.add_argument("--jobs", type=int, default=2)
    measure.add_argument("--max-pixels", type=int, default=25_000_000)
    args = parser.parse_args()
    if args.command == "build":
        args.archive.write_bytes(forge(benign_entries() if args.benign else hostile_entries(args.bomb_mib * 2**20)))
        return
    args.out.mkdir(parents=True)
    report = ingest_source(args.source, args.out, args.max_pixels, args.jobs, progress=False)
    print(
        json.dumps(
            {
                "main": peak_kb(),
                "workers": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
                "kept": len(report.kept),
                "skipped": report.reasons(),
            }
        )
    )


if __name__ == "__main__":
    main()
