"""stages/ingest.py in this process, word for word: the stage's --help, its summary line and files on
the synthetic default, the summary of a real source's report, and the escapes of the report at their
boundaries (kept apart from tests/test_ingest*.py, which issue 17 is changing)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from catsdogs.data.sources import Outcome
from stages.ingest import IngestReport, escape, main, spreadsheet_safe
from tests.conftest import write_params

FILES = ["--external", "ext", "--raw", "raw", "--metrics", "m/ingest.json", "--skipped", "m/skipped.csv"]


def test_help_says_what_the_stage_writes(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert text.startswith("usage: python -m stages.ingest ")
    for words in (
        "Write the raw cat/dog photo set (Kaggle layout: cat.N.jpg, dog.N.jpg) to --raw, generated "
        "(ingest.source: synthetic) or read from a zip or folder inside --external; counts to --metrics, "
        "skipped files with their reason to --skipped.",
        "--external PATH folder of real sources, ingest.source's (in)",
        "--raw PATH folder of the photo set (out)",
        "--metrics PATH counts .json (out)",
        "--skipped PATH skipped files .csv (out)",
    ):
        assert words in text


def test_the_synthetic_default_prints_one_line_and_writes_its_files(in_tmp, capsys):
    write_params(in_tmp / "params.yaml", ingest={"n_per_class": 2})
    main(["--params", "params.yaml", *FILES])
    assert capsys.readouterr().out == (
        "ingest: 4 usable images (2 cats, 2 dogs), 0 skipped from synthetic; skipped files listed in m/skipped.csv\n"
    )
    assert sorted(p.name for p in Path("raw").iterdir()) == ["cat.0.jpg", "cat.1.jpg", "dog.0.jpg", "dog.1.jpg"]
    assert json.loads(Path("m/ingest.json").read_text()) == {"usable": {"cat": 2, "dog": 2, "total": 4}, "skipped": 0}
    with open("m/skipped.csv", newline="", encoding="utf-8") as handle:
        assert list(csv.reader(handle)) == [["entry", "index", "reason", "detail"]]


def test_a_real_sources_summary_names_its_reasons_and_layout():
    report = IngestReport(
        "kaggle",
        ["cat.1.jpg", "dog.2.jpg"],
        [Outcome("a", "empty"), Outcome("b", "empty"), Outcome("c", "bad_name", index=3)],
    )
    assert report.summary("x.zip") == (
        "2 usable images (1 cats, 1 dogs), 3 skipped (1 bad_name, 2 empty) from x.zip (kaggle layout)"
    )
    assert IngestReport("microsoft", ["cat.1.jpg"], []).summary("d") == (
        "1 usable images (1 cats, 0 dogs), 0 skipped from d (microsoft layout)"
    )


@pytest.mark.parametrize(
    "text, shown",
    [
        ("a\\b", "a\\\\b"),
        ("\udc7f", "\\udc7f"),  # just below the range of undecodable bytes: a lone surrogate, not a byte
        ("\udc80", "\\x80"),
        ("\udcff", "\\xff"),
        ("\udd00", "\\udd00"),  # just above
        ("\uffff", "\\uffff"),  # not printable, the last code of 4 hex digits
        ("\U000e0001", "\\U000e0001"),  # not printable, beyond: 8 digits
        ("\t\n", "\\u0009\\u000a"),
        ("é猫", "é猫"),
    ],
)
def test_escape_at_each_boundary(text, shown):
    assert escape(text) == shown


@pytest.mark.parametrize("cell", ["=1", "+1", "-1", "@x", "\tx", "\rx", "'x"])
def test_cells_a_spreadsheet_would_run_get_an_apostrophe(cell):
    assert spreadsheet_safe(cell) == "'" + cell and spreadsheet_safe("x" + cell) == "x" + cell
