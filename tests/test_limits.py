"""Every limit the project documents, tested on both sides: exactly at the limit (allowed) and one step
past it (refused). Name lengths (NAME_MAX, PATH_MAX, the Kaggle name), the decoder's pixel cap, the
worker count (jobs), and every bounded number of params.yaml. The file size cap and the entry count of a
source: tests/test_readers.py; the memory bound: tests/test_memory.py."""

from __future__ import annotations

import dataclasses
import math

import pytest

from catsdogs.data import sources
from catsdogs.data.readers import Entry
from catsdogs.data.sources import NAME_MAX, PATH_MAX, bad_name, name_problem, plan
from catsdogs.errors import ParamError
from catsdogs.pipeline import config, processes
from catsdogs.pipeline.params import Number
from catsdogs.pipeline.processes import worker_count
from tests.ingest_cases import jpeg

# Linux's limits, written here independently of sources.py: a file name component of 255 bytes, a path
# of 4095 bytes (4096 with its NUL).
LINUX_NAME_MAX, LINUX_PATH_MAX = 255, 4096


def test_the_limits_are_linuxs():
    assert (NAME_MAX, PATH_MAX) == (LINUX_NAME_MAX, LINUX_PATH_MAX)


@pytest.mark.parametrize("character", ["x", "é", "猫"])  # 1, 2 and 3 bytes in UTF-8
def test_a_component_of_exactly_255_bytes_is_a_name_and_256_is_not(character):
    width = len(character.encode())
    at_limit = character * (255 // width) + "x" * (255 % width)
    assert len(at_limit.encode()) == 255
    assert bad_name(f"train/{at_limit}") is None and bad_name(at_limit) is None
    assert bad_name(f"train/{at_limit}x") == "a component is longer than 255 bytes"
    assert bad_name(f"{at_limit}x/cat.1.jpg") == "a component is longer than 255 bytes"
    assert bad_name(f"train\\{at_limit}x") == "a component is longer than 255 bytes"  # \ as a separator


def test_a_whole_name_of_4095_bytes_is_a_name_and_4096_is_not():
    def path(length: int) -> str:  # components of 200 bytes
        parts, left = [], length
        while left > 0:
            parts.append("a" * min(200, left))
            left -= len(parts[-1]) + 1
        return "/".join(parts)[:length]

    assert len(path(4095).encode()) == 4095 and bad_name(path(4095)) is None
    assert bad_name(path(4096)) == "longer than 4095 bytes"


def test_a_kaggle_name_of_exactly_255_bytes_is_kept_and_256_is_a_bad_name():
    """cat.<digits>.jpg: 8 bytes around the number."""
    fits, too_long = f"train/cat.{'1' * 247}.jpg", f"train/cat.{'1' * 248}.jpg"
    assert len(fits.split("/")[1]) == 255
    layout, skipped, to_check = plan([Entry("train/dog.1.jpg"), Entry(fits), Entry(too_long)])
    assert layout == "kaggle"
    assert [(o.entry, o.reason) for o in skipped] == [(too_long, "bad_name")]
    assert [name for _, name in to_check] == [f"cat.{'1' * 247}.jpg", "dog.1.jpg"]


def test_name_problem_passes_a_255_byte_component_to_the_layout():
    assert name_problem("train/cat." + "1" * 247 + ".jpg") is None


def test_the_pixel_cap_is_width_times_height_on_both_sides(tmp_path):
    (tmp_path / "image").write_bytes(jpeg(size=(37, 23)))
    assert sources.check_image(tmp_path / "image", 37 * 23) is None
    verdict = sources.check_image(tmp_path / "image", 37 * 23 - 1)
    assert verdict == ("too_many_pixels", f"37x23 = {37 * 23} pixels > {37 * 23 - 1}")


@pytest.mark.parametrize(
    "jobs, tasks, expected",
    [
        (0, 10, 4),  # 0: every usable core
        (3, 10, 3),
        (4, 10, 4),  # exactly the cores
        (5, 10, 4),  # one more than the cores
        (4, 3, 3),  # one task fewer than the cores
        (4, 4, 4),
        (1, 10, 1),
        (0, 0, 1),  # at least one
        (10**9, 10**9, 4),
    ],
)
def test_worker_count_on_both_sides_of_the_cores_and_the_tasks(monkeypatch, jobs, tasks, expected):
    monkeypatch.setattr(processes, "usable_cores", lambda: 4)
    assert worker_count(jobs, tasks) == expected


STAGES = [config.IngestParams, config.ResizeSplitParams, config.TrainParams, config.EvaluateParams]


def bounds():
    """(class, key, value, allowed) at and one step past each bound of every Number of params.yaml."""
    for cls in STAGES:
        for field in dataclasses.fields(cls):
            allowed = field.metadata.get("allowed")
            if not isinstance(allowed, Number):
                continue
            step = 1 if allowed.integer else None
            for bound, is_open, direction in (
                (allowed.low, allowed.low_open, -1),
                (allowed.high, allowed.high_open, 1),
            ):
                if bound is None:
                    continue
                past = bound + direction * step if step else math.nextafter(bound, direction * math.inf)
                inside = bound - direction * step if step else math.nextafter(bound, -direction * math.inf)
                if is_open:  # the bound refused, the next value inside allowed
                    yield cls, field.name, bound, False
                    yield cls, field.name, inside, True
                else:  # the bound allowed, the next value outside refused
                    yield cls, field.name, bound, True
                    yield cls, field.name, past, False


def build(cls, key, value):
    """The stage's params with the defaults and `key` = value (other keys that only apply to another
    choice left out of the way)."""
    defaults = {field.name: field.default for field in dataclasses.fields(cls)}
    return cls(**{**defaults, key: value})


@pytest.mark.parametrize(
    "cls, key, value, ok", list(bounds()), ids=lambda v: getattr(v, "__name__", None) or repr(v)[:20]
)
def test_every_bounded_param_is_allowed_at_a_closed_bound_and_refused_past_it(cls, key, value, ok):
    if ok:
        assert getattr(build(cls, key, value), key) == value
    else:
        with pytest.raises(ParamError, match=rf"{key} = .* is out of range, expected"):
            build(cls, key, value)
