import hashlib
import os
import re
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tqdm import tqdm

import catsdogs.pipeline.atomic_files
import catsdogs.pipeline.processes
import stages.resize_split
from catsdogs.data.images import Preprocessing, load_image
from catsdogs.data.memory import available_memory, pipeline_bytes
from catsdogs.errors import DataError, ParamError
from catsdogs.pipeline.command_line import run_cli
from catsdogs.pipeline.config import ResizeSplitParams
from catsdogs.pipeline.npz_files import load_npz
from stages.resize_split import decode_all, main, resize_split, validation_mask
from tests.conftest import photo_like, write_params


@pytest.fixture(autouse=True)
def tqdm_of_this_process_only(monkeypatch):
    """tqdm without its monitor thread (every tqdm, even a disabled one, starts it) and with a lock of this
    process (its default one includes a multiprocessing lock shared with every process forked after it was
    made). tools/mutation.py's mutmut forks the process that ran these tests once per mutant: children hung
    for minutes on a lock (a futex) that way, one after another."""
    monkeypatch.setattr(tqdm, "monitor_interval", 0)
    monkeypatch.setattr(tqdm, "_lock", threading.RLock(), raising=False)


def solid(mode, color, size=(40, 30)):
    return Image.new(mode, size, color)


def outputs(folder):
    """The train, valid and preprocessing files of a run writing into folder/prepared."""
    return folder / "prepared/train.npz", folder / "prepared/valid.npz", folder / "prepared/preprocessing.json"


def test_validation_mask_is_stratified_seeded_and_order_independent():
    names = [f"cat.{i}.jpg" for i in range(50)] + [f"dog.{i}.jpg" for i in range(30)]
    labels = np.array([1] * 50 + [0] * 30)
    mask = validation_mask(names, labels, 0.2, seed=1)
    assert mask[labels == 1].sum() == 10 and mask[labels == 0].sum() == 6
    order = np.random.default_rng(0).permutation(len(names))
    shuffled = validation_mask([names[i] for i in order], labels[order], 0.2, seed=1)
    assert set(np.array(names)[order][shuffled]) == set(np.array(names)[mask])
    assert not np.array_equal(validation_mask(names, labels, 0.2, seed=2), mask)


def test_equal_names_go_to_validation_in_row_order():
    """Equal keys (a name given twice, or two names whose 64-bit digests collide) are taken in row order
    (a stable sort): the first half of 20 equal names, whatever sort algorithm would pick among ties."""
    mask = validation_mask(["cat.1.jpg"] * 20, np.ones(20, dtype=np.uint8), 0.5, seed=0)
    assert mask.tolist() == [True] * 10 + [False] * 10


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"valid_fraction": 1.5}, r"resize_split.valid_fraction = 1.5 .*> 0 and < 1"),
        ({"draft": "yes"}, r"resize_split.draft = 'yes' is not allowed, expected true or false"),
        ({"jobs": -1}, r"resize_split.jobs = -1 is out of range, expected an integer >= 0"),
        ({"size": 1024}, r"resize_split.size = 1024 is out of range, expected an integer >= 1 and <= 512"),
    ],
)
def test_read_params_rejects_bad_values(tmp_path, changes, message):
    with pytest.raises(ValueError, match=message):
        ResizeSplitParams.read(write_params(tmp_path / "params.yaml", resize_split=changes))


def test_decode_all_output_does_not_depend_on_jobs(tmp_path, monkeypatch):
    monkeypatch.setattr("stages.resize_split.CHUNK", 3)  # several chunks for a few images
    paths = []
    for i in range(8):
        paths.append(tmp_path / f"cat.{i}.jpg")
        photo_like(paths[-1], 150 + 10 * i, 130, seed=i)
    paths.insert(4, tmp_path / "dog.0.jpg")
    paths[4].write_bytes(b"broken")
    runs = [decode_all(paths, 16, progress=False, draft=True, jobs=jobs) for jobs in (1, 2, 0)]
    for X, ok, skipped in runs[1:]:
        np.testing.assert_array_equal(X, runs[0][0])
        np.testing.assert_array_equal(ok, runs[0][1])
        assert skipped == runs[0][2]
    assert runs[0][1].dtype == bool and runs[0][1].tolist() == [True] * 4 + [False] + [True] * 4
    assert runs[0][2] == [("dog.0.jpg", "UnidentifiedImageError: cannot identify image file " + repr(str(paths[4])))]
    np.testing.assert_array_equal(runs[0][0][4], 0)  # its row stays zero
    assert decode_all([], 16, progress=False, draft=True, jobs=1)[0].shape == (0, 16, 16, 3)


def test_resize_split_writes_uint8_caches_and_skips_corrupt_files(tmp_path, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    for i in range(10):
        solid("RGB", (250, 250, 250)).save(raw / f"cat.{i}.jpg")
        solid("RGB", (5, 5, 5)).save(raw / f"dog.{i}.jpg")
    (raw / "dog.99.jpg").write_bytes(b"")  # zero bytes
    (raw / "notes.txt").write_text("ignored: no cat/dog name")
    counts = resize_split(ResizeSplitParams(8, 0.2, 0, draft=False), raw, *outputs(tmp_path), progress=False)
    assert counts == {"train": 16, "valid": 4, "skipped": 1}
    reason = "UnidentifiedImageError: cannot identify image file " + repr(str(raw / "dog.99.jpg"))
    assert capsys.readouterr().err == f"resize_split: skipped dog.99.jpg: {reason}\n"  # no progress bar
    train = load_npz(tmp_path / "prepared/train.npz", ("X", "y", "names"))
    valid = load_npz(tmp_path / "prepared/valid.npz", ("X", "y", "names"))
    assert Preprocessing.load(tmp_path / "prepared/preprocessing.json") == Preprocessing(8, False, 255.0)
    assert train["X"].shape == (16, 8, 8, 3) and train["X"].dtype == np.uint8
    assert sorted(valid["y"].tolist()) == [0, 0, 1, 1]
    assert not set(train["names"]) & set(valid["names"])
    for split in (train, valid):  # labels follow the names: cats bright, dogs dark
        bright = split["X"].reshape(len(split["y"]), -1).mean(axis=1) > 128
        np.testing.assert_array_equal(bright, split["y"] == 1)


@pytest.mark.parametrize("broken", [[], ["cat.3.jpg", "dog.5.jpg"]])
@pytest.mark.parametrize("memfd", [True, False])
def test_files_are_the_plain_recipes_bytes_for_any_jobs(tmp_path, monkeypatch, broken, memfd):
    """Photos are decoded straight into the output order decided before decoding; when some fail to
    decode the split is decided again on the usable ones. Either way: the files of the plain recipe
    (name order, validation_mask on the usable names, X[mask] and X[~mask]), for jobs 1 and 2, with the
    shared rows in anonymous memory (Linux) or in a temporary file (elsewhere), which is removed."""
    monkeypatch.setattr("stages.resize_split.CHUNK", 4)
    if not memfd:
        monkeypatch.delattr(os, "memfd_create")
    created = []  # the temporary file goes to tmp_path/work, not the working folder (no chdir: the spawned
    # workers keep this process's working folder, where tools/mutation.py's mutmut reads its config)

    def temp_sibling(path):
        created.append(catsdogs.pipeline.atomic_files.temp_sibling(tmp_path / "work" / path))
        return created[-1]

    monkeypatch.setattr(stages.resize_split, "temp_sibling", temp_sibling)
    raw = tmp_path / "raw"
    raw.mkdir()
    for label in ("cat", "dog"):
        for i in range(12):
            photo_like(raw / f"{label}.{i}.jpg", 90 + 7 * i, 70 + 5 * i, seed=i + (label == "dog") * 50)
    for name in broken:
        (raw / name).write_bytes(b"not a jpeg")
    files = {}
    for jobs in (1, 2):
        params = ResizeSplitParams(size=16, valid_fraction=0.25, seed=3, jobs=jobs)
        counts = resize_split(params, raw, *outputs(tmp_path / str(jobs)), progress=False)
        files[jobs] = [path.read_bytes() for path in outputs(tmp_path / str(jobs))]
    assert files[1] == files[2]
    assert len(created) == (0 if memfd else 2) and not any(path.exists() for path in created)  # removed
    usable = sorted(p.name for p in raw.iterdir() if p.name not in broken)
    labels = np.array([1 if name.startswith("cat") else 0 for name in usable], dtype=np.uint8)
    X = np.stack([load_image(raw / name, 16, True) for name in usable])
    mask = validation_mask(usable, labels, 0.25, 3)
    assert counts == {"train": int((~mask).sum()), "valid": int(mask.sum()), "skipped": len(broken)}
    for split, rows in (("train", ~mask), ("valid", mask)):
        data = load_npz(tmp_path / f"1/prepared/{split}.npz", ("X", "y", "names"))
        assert data["names"].tolist() == np.array(usable)[rows].tolist()
        np.testing.assert_array_equal(data["y"], labels[rows])
        assert data["y"].dtype == np.uint8
        np.testing.assert_array_equal(data["X"], X[rows])


def test_resize_split_needs_both_classes(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    solid("RGB", (0, 0, 0)).save(raw / "cat.0.jpg")
    with pytest.raises(DataError, match="no usable dog image"):
        resize_split(ResizeSplitParams(8, 0.2, 0), raw, *outputs(tmp_path), progress=False)


def test_resize_split_needs_both_classes_in_both_splits(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for i in range(3):
        solid("RGB", (0, 0, 0)).save(raw / f"cat.{i}.jpg")
    solid("RGB", (0, 0, 0)).save(raw / "dog.0.jpg")  # round(0.2 * 1) = 0: no dog to validate on
    message = (
        "resize_split.valid_fraction = {} leaves no {} image in the {} split ({} usable {} images in all); "
        "choose a fraction that keeps both classes in both splits"
    )
    with pytest.raises(DataError) as error:
        resize_split(ResizeSplitParams(8, 0.2, 0, True, 1), raw, *outputs(tmp_path), progress=False)
    assert str(error.value) == message.format(0.2, "dog", "valid", 1, "dog")  # round(0.2 x 1) = 0 dogs
    with pytest.raises(DataError) as error:
        resize_split(ResizeSplitParams(8, 0.9, 0, True, 1), raw, *outputs(tmp_path), progress=False)
    assert str(error.value) == message.format(0.9, "cat", "train", 3, "cat")  # round(0.9 x 3) = 3 cats
    assert not (tmp_path / "prepared").exists()  # stopped before writing anything


def test_main_takes_every_path_from_the_command_line(in_tmp, capsys):
    (in_tmp / "photos").mkdir()
    for i in range(5):
        solid("RGB", (250, 250, 250)).save(in_tmp / "photos" / f"cat.{i}.jpg")
        solid("RGB", (5, 5, 5)).save(in_tmp / "photos" / f"dog.{i}.jpg")
    params = write_params(in_tmp / "p.yaml", resize_split={"size": 4, "jobs": 1})
    main(
        [
            "--params",
            str(params),
            "--raw",
            "photos",
            "--train-images",
            "a/tr.npz",
            "--valid-images",
            "b/va.npz",
            "--preprocessing",
            "c/pre.json",
        ]
    )
    out, err = capsys.readouterr()
    assert out == "resize_split: 8 train, 2 valid, 0 skipped\n"
    assert re.search(r"^resize_split: 100%.* 10/10 \[.*img/s\]$", err.replace("\r", "\n"), re.MULTILINE), err  # tqdm
    assert sorted(str(p) for p in in_tmp.rglob("*.*") if "photos" not in p.parts) == sorted(
        str(in_tmp / name) for name in ("a/tr.npz", "b/va.npz", "c/pre.json", "p.yaml")
    )
    assert Preprocessing.load("c/pre.json") == Preprocessing(4, True)
    with pytest.raises(SystemExit):
        main(["--raw", "photos"])  # every path is required: no default path in the code
    assert "the following arguments are required: --train-images, --valid-images, --preprocessing" in (
        capsys.readouterr().err
    )


def test_resize_split_output_does_not_depend_on_the_listing_order(tmp_path, monkeypatch):
    raw = tmp_path / "raw"
    raw.mkdir()
    for i in range(12):
        photo_like(raw / f"{('cat', 'dog')[i % 2]}.{i}.jpg", 60 + 7 * i, 50 + 3 * i, seed=i)
    original = Path.iterdir
    digests = []
    for order in (
        sorted,
        lambda entries: sorted(entries, reverse=True),
        lambda entries: [entries[i] for i in np.random.default_rng(1).permutation(len(entries))],
    ):
        monkeypatch.setattr(Path, "iterdir", lambda self, order=order: iter(order(list(original(self)))))
        out = tmp_path / f"out{len(digests)}"
        resize_split(ResizeSplitParams(8, 0.3, 5, jobs=1), raw, *outputs(out), progress=False)
        digests.append([path.read_bytes() for path in outputs(out)])
    assert digests[0] == digests[1] == digests[2]
    names = load_npz(outputs(tmp_path / "out0")[1], ("names",))["names"]
    assert 0 < len(names) < 12 and list(names) == sorted(names)


def test_images_that_would_not_fit_in_memory_stop_the_stage_before_decoding(in_tmp, monkeypatch):
    """m x size^2 x 3 x (1 + 4) bytes against what is available: 2,000 images at 512 px need 7.3 GiB."""
    raw = in_tmp / "raw"
    raw.mkdir()
    (in_tmp / "empty").touch()
    for i in range(1000):
        for name in (f"cat.{i}.jpg", f"dog.{i}.jpg"):
            os.link(in_tmp / "empty", raw / name)  # never decoded: the stage stops first
    monkeypatch.setattr(stages.resize_split, "available_memory", lambda: 4 << 30)
    message = (
        r"^params.yaml: resize_split.size = 512 needs about 7.3 GiB of memory for the 2000 images of .*raw "
        r"\(m x size\^2 x 3 bytes of uint8 images plus 4 times that of float32 features, held at once by "
        r"flatten_normalize and train\), more than the 4.0 GiB available now; the largest size that fits is "
        r"378 \(the article uses 64\)$"
    )
    with pytest.raises(ParamError, match=message):
        resize_split(ResizeSplitParams(512, 0.2, 0), raw, *outputs(in_tmp), progress=False)
    assert pipeline_bytes(2000, 378) <= 4 << 30 < pipeline_bytes(2000, 379)
    assert not (in_tmp / "prepared").exists()


def test_the_memory_check_reads_this_machines_memory(in_tmp, capsys):
    """End to end through main with the memory the machine really has: enough (empty) photo files that
    512 x 512 images would need twice what is available now."""
    per_image = pipeline_bytes(1, 512)
    m = 2 * available_memory() // per_image + 2
    if m > 200_000:
        pytest.skip(f"this machine has too much memory to fill with {m} photo names")
    (in_tmp / "raw").mkdir()
    (in_tmp / "empty").touch()
    for i in range(m // 2):  # hard links: one system call per name
        os.link(in_tmp / "empty", in_tmp / "raw" / f"cat.{i}.jpg")
        os.link(in_tmp / "empty", in_tmp / "raw" / f"dog.{i}.jpg")
    params = write_params(in_tmp / "params.yaml", resize_split={"size": 512})
    with pytest.raises(SystemExit) as status:
        run_cli(
            main,
            [
                "--params",
                str(params),
                "--raw",
                "raw",
                *[
                    str(arg)
                    for pair in zip(("--train-images", "--valid-images", "--preprocessing"), outputs(in_tmp))
                    for arg in pair
                ],
            ],
        )
    assert status.value.code == 2
    err = capsys.readouterr().err
    assert re.search(
        rf"error: params.yaml: resize_split.size = 512 needs about [0-9.]+ GiB of memory for the "
        rf"{m // 2 * 2} images of raw .* more than the [0-9.]+ GiB available now; the largest size "
        rf"that fits is (\d+) \(the article uses 64\)\n$",
        err,
    ), err
    assert "skipped" not in err and not (in_tmp / "prepared").exists()  # nothing decoded, nothing written


def test_validation_mask_is_the_first_names_by_seeded_hash_in_each_class():
    """The split as documented, from a plain loop: in each class the round(fraction x count) names with the
    smallest blake2b-64 hex digest of "seed:name" (Python's round: 2.5 -> 2, 1.5 -> 2)."""
    names = [f"cat.{i}.jpg" for i in range(10)] + [f"dog.{i}.jpg" for i in range(6)]
    labels = np.array([1] * 10 + [0] * 6, dtype=np.uint8)
    for seed in (0, 42):
        expected = set()
        for label in ("cat", "dog"):
            group = [name for name in names if name.startswith(label)]
            digest = {name: hashlib.blake2b(f"{seed}:{name}".encode(), digest_size=8).hexdigest() for name in group}
            expected |= set(sorted(group, key=digest.get)[: round(0.25 * len(group))])
        mask = validation_mask(names, labels, 0.25, seed)
        assert mask.dtype == bool and set(np.array(names)[mask]) == expected and len(expected) == 2 + 2
        assert validation_mask(names[:10], labels[:10], 0.25, seed).tolist() == mask[:10].tolist()  # cats alone


def test_help_names_every_file_and_what_the_stage_does(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # no wrapping
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m stages.resize_split ")
    assert (
        "\nDecode the photos of --raw (cat.N.jpg, dog.N.jpg), resize to size x size RGB (bilinear), split stratified "
        "into --train-images and --valid-images (uint8 .npz), with `jobs` processes; write the preprocessing a new "
        "photo needs to --preprocessing.\n" in out
    )
    for line in (
        "--params PARAMS       parameters file (default: params.yaml)",
        "--raw PATH            folder of the photos (in)",
        "--train-images PATH   training images .npz (out)",
        "--valid-images PATH   validation images .npz (out)",
        "--preprocessing PATH  preprocessing record .json (out)",
        "parameters (the `resize_split` group of params.yaml):",
    ):
        assert f"\n  {line}\n" in out or f"\n{line}\n" in out, line


@pytest.mark.parametrize("draft", [False, True])
def test_resize_split_decodes_as_the_draft_parameter_says(tmp_path, monkeypatch, draft):
    """The photos in the files are load_image's with resize_split.draft (which changes the pixels of photos
    much larger than size), decoded by the `jobs` processes asked for."""
    raw = tmp_path / "raw"
    raw.mkdir()
    for i, label in enumerate(("cat", "cat", "dog", "dog")):
        photo_like(raw / f"{label}.{i}.jpg", 150, 120, seed=i)
    seen_jobs = []

    def ordered_map(function, items, jobs):  # the real one, noting the number of processes asked for
        seen_jobs.append(jobs)
        return catsdogs.pipeline.processes.ordered_map(function, items, jobs)

    monkeypatch.setattr(stages.resize_split, "ordered_map", ordered_map)
    params = ResizeSplitParams(size=8, valid_fraction=0.5, seed=0, draft=draft, jobs=3)  # 1 chunk: runs inline
    resize_split(params, raw, *outputs(tmp_path), progress=False)
    assert seen_jobs == [3]
    names = sorted(p.name for p in raw.iterdir())
    decoded = {name: load_image(raw / name, 8, draft) for name in names}
    assert not np.array_equal(decoded[names[0]], load_image(raw / names[0], 8, not draft))
    for path in outputs(tmp_path)[:2]:
        data = load_npz(path, ("X", "names"))
        np.testing.assert_array_equal(data["X"], np.stack([decoded[name] for name in data["names"]]))
