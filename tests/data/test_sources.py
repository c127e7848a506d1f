"""Every data source and every pipeline stage, on files the test writes itself (tests/datafiles.py).

Values, not only shapes: the examples of all three splits are matched back to the
images and arrays they were written from (exactly for lossless formats), and every
label to the folder, column or record it came from. Tests marked xfail(strict) are
bugs: the reason says what happens instead.
"""

from __future__ import annotations

import importlib.util
import json
import os
import textwrap
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml

from cnnctl.data import preprocess
from cnnctl.data.pipeline import load_source
from cnnctl.errors import Problem, RecipeError, UserError
from cnnctl.recipe import load_recipe_text
from tests import datafiles as files
from tests.conftest import datasets_of

SPLITS = ("train", "validation", "test")
LOSSLESS = (".png", ".bmp", ".gif")


# --- helpers -------------------------------------------------------------------------------------


def _plain(value):
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def recipe(data: dict, seed: int = 42, **sections):
    """A recipe with this ``data:`` section (the model is irrelevant to the data and never built)."""
    doc = {"name": "t", "seed": seed, "data": _plain(data),
           "model": {"input": [8, 8, 1], "layers": ["Flatten"]}, **sections}
    return load_recipe_text(yaml.safe_dump(doc, sort_keys=False))


def build(data: dict, seed: int = 42, normalization: dict | None = None):
    return datasets_of(recipe(data, seed), normalization)


def arrays(data, split: str) -> tuple[np.ndarray, np.ndarray]:
    """One pass over a split: all its (x, y) as NumPy arrays."""
    xs, ys = [], []
    for x, y in data[split]:
        xs.append(x.numpy())
        ys.append(y.numpy())
    if not xs:
        return np.zeros((0, *data.element_shape), "float32"), np.zeros(0, "int32")
    return np.concatenate(xs), np.concatenate(ys)


def examples(x: np.ndarray, y, scale: float = 1.0) -> Counter:
    """The multiset of (label, pixels) pairs; pixels as 8-bit values after multiplying by ``scale``."""
    pixels = np.round(np.asarray(x, "float64") * scale).astype("uint8")
    return Counter((label if isinstance(label, str) else int(label), p.tobytes())
                   for label, p in zip(list(y), pixels, strict=True))


def all_examples(data, scale: float = 255.0) -> Counter:
    total: Counter = Counter()
    for split in SPLITS:
        total += examples(*arrays(data, split), scale=scale)
    return total


def text_recipe(data: str) -> str:
    """A recipe whose ``data:`` keys start on line 4, column 3."""
    body = textwrap.indent(textwrap.dedent(data).strip("\n"), "  ")
    return f"name: t\nseed: 42\ndata:\n{body}\nmodel: {{input: [8, 8, 1], layers: [Flatten]}}\n"


def data_problem(data: str) -> Problem:
    """The one located problem that building this data section raises."""
    with pytest.raises(RecipeError) as info:
        datasets_of(load_recipe_text(text_recipe(data)))
    assert len(info.value.problems) == 1, info.value
    return info.value.problems[0]


def written_images(root: Path) -> list[tuple[Path, str, np.ndarray]]:
    """(file, class folder, grayscale pixels as PIL reads them) of every image below root/CLASS/."""
    return [(path, path.parent.name, files.read_pixels(path)) for path in sorted(root.glob("*/*"))
            if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".gif")]


def match_to_files(gray: np.ndarray, labels: np.ndarray, class_names: list[str], written) -> list[Path]:
    """Match every decoded example to the written file it is closest to; check label and pixels.

    Lossless files must decode to exactly the pixels written; JPEG within a few
    levels (TensorFlow's and PIL's decoders differ slightly). Returns the files.
    """
    references = np.stack([pixels for _, _, pixels in written]).astype("float64")
    matched = []
    for image, label in zip(gray, labels, strict=True):
        distance = np.abs(references - image).mean(axis=(1, 2))
        best = int(distance.argmin())
        path, folder, _ = written[best]
        assert class_names[label] == folder, f"{path} has label {class_names[label]}"
        if path.suffix in LOSSLESS:
            assert distance[best] == 0, f"{path} decodes to other pixels (mean difference {distance[best]})"
        else:
            assert distance[best] < 4, f"{path}: JPEG decoded {distance[best]:.1f} levels away"
        matched.append(path)
    return matched


def image_spec(root: Path, **keys) -> dict:
    return {"source": "image_dir", "path": root, "image_size": [16, 16], "color_mode": "grayscale", **keys}


# --- data written once per module ----------------------------------------------------------------


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """90 digits (3 classes) as 16x16 PNG and JPEG files in class folders, no split folders."""
    return files.write_image_dir(tmp_path_factory.mktemp("flat") / "photos", count=90, classes=3, size=16)


@pytest.fixture(scope="module")
def png_folder(tmp_path_factory) -> Path:
    return files.write_image_dir(tmp_path_factory.mktemp("png") / "photos", count=30, classes=3, size=16,
                                 formats=("png",))


@pytest.fixture(scope="module")
def split_folder(tmp_path_factory) -> Path:
    """100 digits (3 classes, PNG and JPEG) in train/ val/ test/ folders of class folders: 60/20/20."""
    return files.write_image_dir(tmp_path_factory.mktemp("split") / "photos", count=100, classes=3, size=16,
                                 splits={"train": 0.6, "val": 0.2, "test": 0.2})


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory) -> Path:
    """40 PNG and JPEG digits (2 classes), plus one BMP in zero/ and one GIF in one/ (digits not used elsewhere)."""
    root = files.write_image_dir(tmp_path_factory.mktemp("mixed") / "photos", count=40, classes=2, size=16)
    x, y = files.digits(classes=2)
    for digit, name, ext in ((0, "zero", "bmp"), (1, "one", "gif")):
        big = np.kron(x[y == digit][-1], np.ones((2, 2), "uint8"))  # 8x8 -> 16x16, as write_image_dir enlarges
        files.write_image(root / name / f"extra.{ext}", big)
    return root


@pytest.fixture(scope="module")
def npz_digits(tmp_path_factory) -> Path:
    """300 digits as uint8 x [300, 8, 8, 1] and y in an npz (0..255 pixels)."""
    return files.write_npz(tmp_path_factory.mktemp("npz") / "digits.npz", count=300)


@pytest.fixture(scope="module")
def three_channels(tmp_path_factory) -> Path:
    """300 uint8 8x8x3 images whose channels have different means and spreads: digit, inverse, digit/4."""
    return files.write_npz(tmp_path_factory.mktemp("rgb") / "rgb.npz", count=300,
                           x=lambda x, y: np.stack([x, 255 - x, x // 4], axis=-1), y=lambda x, y: y)


# --- image_dir -----------------------------------------------------------------------------------


@pytest.mark.parametrize("class_names", [None, ["zero", "one", "two"]], ids=["sorted", "given"])
def test_image_dir_split_folders(split_folder, class_names):
    spec = image_spec(split_folder, normalize="none")
    if class_names:
        spec["class_names"] = class_names
    data = build(spec)
    assert data.class_names == (class_names or ["one", "two", "zero"])  # default: sorted folder names
    for split, folder in (("train", "train"), ("validation", "val"), ("test", "test")):
        written = written_images(split_folder / folder)
        assert data.sizes[split] == len(written)
        assert data.class_counts[split].tolist() == [
            sum(1 for _, name, _ in written if name == c) for c in data.class_names]
        x, y = arrays(data, split)
        assert x.shape == (len(written), 16, 16, 1) and x.dtype == np.float32
        matched = match_to_files(x[..., 0], y, data.class_names, written)
        assert sorted(matched) == [path for path, _, _ in written]  # each file once, no other


def test_image_dir_carves_validation_from_train_when_only_test_is_given(tmp_path):
    root = files.write_image_dir(tmp_path / "photos", count=100, classes=3, size=8,
                                 splits={"train": 0.8, "test": 0.2})
    data = build(image_spec(root, image_size=[8, 8], split={"validation": 0.25, "test": 0.5}))
    assert data.sizes == {"train": 60, "validation": 20, "test": 20}  # test: the folder as is, not 50%


def test_image_dir_reads_png_jpeg_bmp_and_gif(mixed_folder):
    written = written_images(mixed_folder)
    assert {path.suffix for path, _, _ in written} == {".png", ".jpg", ".bmp", ".gif"}
    data = build(image_spec(mixed_folder, color_mode="rgb", normalize="none", split={"validation": 0, "test": 0}))
    assert data.sizes == {"train": len(written), "validation": 0, "test": 0}
    x, y = arrays(data, "train")
    assert x.shape == (len(written), 16, 16, 3)
    assert np.array_equal(x[..., 0], x[..., 1]) and np.array_equal(x[..., 0], x[..., 2])  # grey in rgb
    matched = match_to_files(x[..., 0], y, data.class_names, written)
    assert sorted(matched) == [path for path, _, _ in written]


@pytest.mark.parametrize("mode, channels", [("grayscale", 1), ("rgba", 4)])
def test_image_dir_mixed_formats_in_every_color_mode(mixed_folder, mode, channels):
    written = written_images(mixed_folder)
    data = build(image_spec(mixed_folder, color_mode=mode, normalize="none", split={"validation": 0, "test": 0}))
    x, y = arrays(data, "train")
    assert x.shape == (len(written), 16, 16, channels)
    match_to_files(x[..., 0], y, data.class_names, written)


@pytest.mark.parametrize("mode, channels", [("grayscale", 1), ("rgb", 3), ("rgba", 4)])
def test_color_mode_and_image_size(png_folder, mode, channels):
    data = build(image_spec(png_folder, image_size=[8, 12], color_mode=mode, normalize="none"))
    assert data.stored_shape == data.element_shape == (8, 12, channels)
    x, _ = arrays(data, "train")
    assert x.shape[1:] == (8, 12, channels) and x.max() > 200  # resized, still 0..255 pixels
    for c in range(1, min(channels, 3)):
        assert np.array_equal(x[..., c], x[..., 0])  # grey images: r = g = b
    if channels == 4:
        assert np.all(x[..., 3] == 255)  # opaque


def test_split_without_split_folders_is_seeded_and_stratified(folder):
    spec = image_spec(folder, normalize="none", split={"validation": 0.2, "test": 0.2})
    first, again, other = build(spec, seed=1), build(spec, seed=1), build(spec, seed=2)
    written = written_images(folder)
    per_class = np.array([sum(1 for _, name, _ in written if name == c) for c in first.class_names])
    assert sum(first.class_counts.values()).tolist() == per_class.tolist()
    for split, share in (("train", 0.6), ("validation", 0.2), ("test", 0.2)):
        assert np.all(np.abs(first.class_counts[split] - share * per_class) <= 1), split  # proportional
    for split in SPLITS:  # same seed, same split; another seed, another split
        assert examples(*arrays(first, split)) == examples(*arrays(again, split)), split
        assert examples(*arrays(first, split)) != examples(*arrays(other, split)), split
    everything = all_examples(first, scale=1.0)
    assert sum(everything.values()) == len(written) == len(everything)  # disjoint and complete


@pytest.fixture
def folder_with_bad_files(tmp_path) -> Path:
    root = files.write_class_folders(tmp_path / "photos", {"cat": 10, "dog": 10})
    (root / "cat" / "empty.png").write_bytes(b"")
    (root / "dog" / "notes.png").write_text("not an image\n")
    return root


def test_unreadable_files_fail_by_default_listing_them(folder_with_bad_files):
    root = folder_with_bad_files
    with pytest.raises(UserError) as info:
        build(image_spec(root, image_size=[8, 8]))
    message = str(info.value)
    assert "2 image files cannot be decoded" in message and "on_error: skip" in message
    assert str(root / "cat" / "empty.png") in message and str(root / "dog" / "notes.png") in message


def test_unreadable_files_skipped_with_a_warning(folder_with_bad_files, capsys):
    root = folder_with_bad_files
    data = build(image_spec(root, image_size=[8, 8], on_error="skip", split={"validation": 0, "test": 0}))
    err = capsys.readouterr().err
    assert err.startswith("warning: 2 image files cannot be decoded") and "left out (data.on_error: skip)" in err
    assert str(root / "cat" / "empty.png") in err and str(root / "dog" / "notes.png") in err
    assert data.sizes["train"] == 20 and data.class_counts["train"].tolist() == [10, 10]
    assert len(arrays(data, "train")[1]) == 20


@pytest.mark.parametrize("layout", ["class folder without images", "images without class folders"])
def test_folder_without_images_is_located(tmp_path, layout):
    root = tmp_path / "photos"
    if layout == "class folder without images":
        (root / "cat").mkdir(parents=True)
        (root / "cat" / "readme.txt").write_text("no images here\n")
    else:
        files.write_image(root / "0001.png", np.zeros((8, 8), "uint8"))
    problem = data_problem(f"source: image_dir\npath: {root}\n")
    assert problem.where.startswith("<string>:5:") and problem.path == "data.path"
    assert f"{root} has no images" in problem.message and "class" in problem.message


def test_mistyped_path_suggests_the_closest(folder):
    problem = data_problem(f"source: image_dir\npath: {folder.parent / 'photoz'}\n")
    assert problem.where.startswith("<string>:5:") and problem.path == "data.path"
    assert "does not exist" in problem.message and f"did you mean '{folder}'" in problem.message


# --- cache ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("cache", ["memory", "file"])
def test_cache_gives_the_same_examples(folder, tmp_path, cache):
    spec = image_spec(folder, normalize="none")
    plain = build(spec)
    prefix = tmp_path / "cache" / "photos"
    prefix.parent.mkdir()
    cached = build({**spec, "cache": "memory" if cache == "memory" else prefix})
    for split in SPLITS:
        expected = arrays(plain, split)
        for _epoch in range(2):  # the first pass fills the cache, the second reads it
            got = arrays(cached, split)
            if split == "train":  # shuffled: the same examples, in another order
                assert examples(*got) == examples(*expected)
            else:
                assert np.array_equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])
    if cache == "file":
        written = sorted(os.listdir(prefix.parent))
        assert written and all(name.startswith("photos") for name in written)
        assert sum(name.endswith(".index") for name in written) == 3, written  # one cache per split


def test_file_cache_is_not_reused_for_other_examples(folder, tmp_path):
    spec = image_spec(folder, normalize="none", cache=tmp_path / "c")
    arrays(build(spec, seed=1), "test")  # fills a cache with seed 1's test split
    fresh = arrays(build({**spec, "cache": "none"}, seed=2), "test")
    cached = arrays(build(spec, seed=2), "test")  # the same prefix: must not read seed 1's examples
    assert np.array_equal(cached[1], fresh[1]) and np.array_equal(cached[0], fresh[0])
    again = arrays(build(spec, seed=1), "test")  # seed 1's cache is still good
    assert examples(*again) != examples(*fresh)


def test_file_cache_folder_is_created(folder, tmp_path):
    prefix = tmp_path / "no" / "such" / "prefix"
    plain = arrays(build(image_spec(folder)), "validation")
    cached = arrays(build(image_spec(folder, cache=prefix)), "validation")
    assert np.array_equal(cached[0], plain[0]) and np.array_equal(cached[1], plain[1])
    assert any(name.startswith("prefix-validation") for name in os.listdir(prefix.parent))


# --- split edge cases ----------------------------------------------------------------------------


def test_an_empty_class_folder_keeps_the_split_stratified(tmp_path):
    root = files.write_class_folders(tmp_path / "photos", {"a": 30, "b": 30, "c": 30})
    (root / "0_empty").mkdir()
    data = build(image_spec(root, image_size=[8, 8], split={"validation": 0.2, "test": 0.2}))
    assert data.class_names[0] == "0_empty"
    assert data.class_counts["test"].tolist() == [0, 6, 6, 6]
    assert data.class_counts["validation"].tolist() == [0, 6, 6, 6]


def test_split_is_stratified_without_an_empty_class(tmp_path):  # the control of the test above
    root = files.write_class_folders(tmp_path / "photos", {"a": 30, "b": 30, "c": 30})
    data = build(image_spec(root, image_size=[8, 8], split={"validation": 0.2, "test": 0.2}))
    assert data.class_counts["test"].tolist() == data.class_counts["validation"].tolist() == [6, 6, 6]


def test_few_examples_per_class_are_split_at_random_with_a_warning(tmp_path, capsys):
    # 3 examples of each of 10 classes cannot fill a stratified test split of 6 and validation split of 3 (each
    # would need every class): the build does not fail, it says so and splits at random, every example once.
    root = files.write_class_folders(tmp_path / "photos", dict.fromkeys("abcdefghij", 3))
    data = build(image_spec(root, image_size=[8, 8]))
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning: ")]
    assert warnings == ["warning: 30 examples of 10 classes are too few, so the held-out splits cannot be "
                        "stratified; splitting at random"]
    assert data.sizes == {"train": 21, "validation": 3, "test": 6}  # the recipe's 20 % and 10 % all the same
    assert sum(data.class_counts[split] for split in SPLITS).tolist() == [3] * 10  # each example in one split
    train_labels = arrays(data, "train")[1].reshape(-1)
    assert np.bincount(train_labels, minlength=10).tolist() == data.class_counts["train"].tolist()
    again = build(image_spec(root, image_size=[8, 8]))  # at random, but by the recipe's seed
    assert all(again.class_counts[s].tolist() == data.class_counts[s].tolist() for s in SPLITS)


# --- npz -----------------------------------------------------------------------------------------


def test_npz_x_y_uint8_is_rescaled(npz_digits):
    data = build({"source": "npz", "path": npz_digits})
    x, y = files.digits(300)
    assert data.sizes == {"train": 210, "validation": 30, "test": 60}
    assert data.class_names == [str(i) for i in range(10)] and data.stored_shape == (8, 8, 1)
    assert data.stored_dtype == "uint8" and data.normalization == {"normalize": "rescale", "rescale": 1 / 255}
    train_x, _ = arrays(data, "train")
    assert train_x.min() == 0.0 and train_x.max() == 1.0  # normalize auto: 8-bit pixels * 1/255
    assert all_examples(data) == examples(x, y)  # every example once, with its label


def test_npz_custom_keys_and_float_data_is_not_rescaled(tmp_path):
    x, y = files.digits(200)
    floats = (x / 255.0 * 0.8 + 0.1).astype("float32")[..., None]  # in [0.1, 0.9]: a rescale would show
    path = files.write_npz(tmp_path / "f.npz", count=200, images=lambda *_: floats, labels=lambda x, y: y)
    data = build({"source": "npz", "path": path, "x": "images", "y": "labels"})
    assert data.stored_dtype == "float32" and data.normalization == {"normalize": "none"}
    got = Counter()
    for split in SPLITS:
        xs, ys = arrays(data, split)
        got += Counter((int(label), image.tobytes()) for label, image in zip(ys, xs, strict=True))
    assert got == Counter((int(label), image.tobytes()) for label, image in zip(y, floats, strict=True))


def test_npz_keras_style_train_and_test_arrays(tmp_path):
    x, y = files.digits(250)
    path = files.write_npz(tmp_path / "k.npz", count=250, x_train=lambda x, y: x[:200], y_train=lambda x, y: y[:200],
                           x_test=lambda x, y: x[200:], y_test=lambda x, y: y[200:])  # [N, 8, 8] as mnist
    data = build({"source": "npz", "path": path, "reshape": [8, 8, 1]})
    assert data.sizes == {"train": 180, "validation": 20, "test": 50}  # test as stored; validation from train
    assert data.stored_shape == (8, 8, 1)
    assert examples(*arrays(data, "test"), scale=255) == examples(x[200:], y[200:])
    train = examples(*arrays(data, "train"), scale=255) + examples(*arrays(data, "validation"), scale=255)
    assert train == examples(x[:200], y[:200])


def test_npz_splits_as_their_own_files(tmp_path):
    x, y = files.digits(250)
    train = files.write_npz(tmp_path / "train.npz", count=200)
    test = files.write_npz(tmp_path / "test.npz", count=250, x=lambda x, y: x[200:, ..., None], y=lambda x, y: y[200:])
    data = build({"source": "npz", "path": {"train": train, "test": test}})
    assert data.sizes == {"train": 180, "validation": 20, "test": 50}
    assert examples(*arrays(data, "test"), scale=255) == examples(x[200:], y[200:])
    problem = data_problem(f"source: npz\npath:\n  train: {train}\n  test: {tmp_path / 'tset.npz'}\n")
    assert problem.where.startswith("<string>:7:") and problem.path == "data.path.test"
    assert f"did you mean '{test}'" in problem.message


def test_npz_missing_array_is_located_with_did_you_mean(tmp_path):
    path = files.write_npz(tmp_path / "d.npz", count=20, images=lambda x, y: x, labels=lambda x, y: y)
    problem = data_problem(f"source: npz\npath: {path}\nx: images\ny: label\n")
    assert problem.where.startswith("<string>:7:") and problem.path == "data.y"
    assert "no array 'label'" in problem.message and "did you mean 'labels'" in problem.message
    problem = data_problem(f"source: npz\npath: {path}\n")  # the default x
    assert problem.path == "data.x" and "it has images, labels" in problem.message


# --- csv -----------------------------------------------------------------------------------------


def test_csv_pixel_columns_reshaped(tmp_path):
    path = files.write_csv(tmp_path / "d.csv", count=200)
    data = build({"source": "csv", "path": path, "reshape": [8, 8, 1]})
    x, y = files.digits(200)
    assert data.sizes == {"train": 140, "validation": 20, "test": 40}
    assert data.stored_shape == (8, 8, 1) and data.stored_dtype == "uint8"
    assert data.normalization["normalize"] == "rescale"
    assert all_examples(data) == examples(x, y)


@pytest.mark.parametrize("order", [None, ["zero", "one", "two"]], ids=["sorted", "given"])
def test_csv_text_labels_become_class_names(tmp_path, order):
    names = ["zero", "one", "two"]
    path = files.write_csv(tmp_path / "n.csv", count=150, classes=3, names=names)
    data = build({"source": "csv", "path": path, "reshape": [8, 8, 1], **({"class_names": order} if order else {})})
    assert data.class_names == (order or ["one", "two", "zero"])
    x, y = files.digits(150, classes=3)
    got = Counter()
    for split in SPLITS:
        xs, ys = arrays(data, split)
        got += examples(xs, [data.class_names[i] for i in ys], scale=255)
    assert got == examples(x, [names[i] for i in y])


def test_csv_non_numeric_cell_names_file_line_and_column(tmp_path):
    path = files.write_csv(tmp_path / "d.csv", count=20)
    lines = path.read_text().splitlines()
    cells = lines[6].split(",")
    cells[5] = "n/a"
    lines[6] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError) as info:
        build({"source": "csv", "path": path, "reshape": [8, 8, 1]})
    assert f"{path}:7: column 'p5' is 'n/a', not a number" in str(info.value)


def test_csv_missing_label_column_is_located(tmp_path):
    path = files.write_csv(tmp_path / "d.csv", count=20)
    problem = data_problem(f"source: csv\npath: {path}\ny: lable\n")
    assert problem.where.startswith("<string>:6:") and problem.path == "data.y"
    assert "no column 'lable'" in problem.message and "did you mean 'label'" in problem.message
    path.write_text(path.read_text().replace(",label\n", ",digit\n", 1))
    problem = data_problem(f"source: csv\npath: {path}\n")  # the default label column
    assert problem.path == "data.y" and "no column 'label'" in problem.message


# --- tfrecord ------------------------------------------------------------------------------------

IMAGE_FEATURES = {"image": {"dtype": "string"}, "label": {"dtype": "int64"}}
FLOAT_FEATURES = {"image": {"dtype": "float32", "shape": [8, 8, 1]}, "label": {"dtype": "int64"}}


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("tfrecord")
    return {"gzip": files.write_tfrecord(folder / "digits.tfrecord.gz", count=200),
            "floats": files.write_tfrecord(folder / "digits.tfrecord", count=200, encoded=False, gzip=False)}


@pytest.mark.parametrize("compression", ["auto", "GZIP"])
def test_tfrecord_gzip_png_images(records, compression):
    data = build({"source": "tfrecord", "path": records["gzip"], "features": IMAGE_FEATURES,
                  "compression": compression, "image_size": [8, 8], "color_mode": "grayscale"})
    x, y = files.digits(200)
    assert data.sizes == {"train": 140, "validation": 20, "test": 40}
    assert data.stored_shape == (8, 8, 1) and data.stored_dtype == "uint8"
    assert data.class_counts["train"].sum() == 140 and len(data.class_names) == 10
    assert all_examples(data) == examples(x, y)  # PNG: exact pixels, each with its label


def test_tfrecord_uncompressed_float_features(records):
    data = build({"source": "tfrecord", "path": records["floats"], "features": FLOAT_FEATURES})
    x, y = files.digits(200)
    assert data.sizes == {"train": 140, "validation": 20, "test": 40}
    assert data.stored_dtype == "float32" and data.normalization == {"normalize": "none"}
    expected = (x / 255.0).astype("float32")[..., None]
    got = Counter()
    for split in SPLITS:
        xs, ys = arrays(data, split)
        got += Counter((int(label), image.tobytes()) for label, image in zip(ys, xs, strict=True))
    assert got == Counter((int(label), image.tobytes()) for label, image in zip(y, expected, strict=True))


@pytest.mark.parametrize("kind, compression", [("gzip", "none"), ("gzip", "ZLIB"), ("floats", "GZIP")])
def test_tfrecord_wrong_compression_is_a_user_error(records, kind, compression):
    features = IMAGE_FEATURES if kind == "gzip" else FLOAT_FEATURES
    with pytest.raises(UserError) as info:
        build({"source": "tfrecord", "path": records[kind], "features": features, "compression": compression})
    message = str(info.value)
    assert str(records[kind]) in message and f"compression {compression}" in message
    assert "data.compression" in message


def test_tfrecord_wrong_compression_message_has_no_tensorflow_internals(records):
    with pytest.raises(UserError) as info:
        build({"source": "tfrecord", "path": records["floats"], "features": FLOAT_FEATURES, "compression": "GZIP"})
    assert "function_node" not in str(info.value) and "Op:" not in str(info.value)


def test_tfrecord_feature_dtype_that_does_not_match_the_records(records):
    with pytest.raises(UserError, match="features"):
        arrays(build({"source": "tfrecord", "path": records["gzip"], "features": FLOAT_FEATURES}), "train")


# --- synthetic, tfds -----------------------------------------------------------------------------


def test_synthetic_sizes_shape_classes_and_seed():
    spec = {"source": "synthetic", "shape": [8, 8, 3], "classes": 4, "count": 200}
    first, again, other = build(spec, seed=1), build(spec, seed=1), build(spec, seed=2)
    assert first.sizes == {"train": 140, "validation": 20, "test": 40}
    assert first.class_names == ["0", "1", "2", "3"] and first.element_shape == (8, 8, 3)
    assert first.stored_dtype == "float32" and first.normalization == {"normalize": "none"}
    assert np.all(first.class_counts["train"] > 20)
    x1, y1 = arrays(first, "test")
    x2, y2 = arrays(again, "test")
    x3, _ = arrays(other, "test")
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    assert not np.allclose(x1, x3)
    assert x1.min() >= 0 and x1.max() <= 1 and x1.std() > 0.1


def test_a_small_model_learns_synthetic_data(tmp_path):
    from cnnctl import train

    text = """
    name: synth
    seed: 3
    data: {source: synthetic, shape: [8, 8, 1], classes: 4, count: 400, batch_size: 32}
    model: {input: [8, 8, 1], layers: [Flatten, {Dense: {units: 4, activation: softmax}}]}
    train: {epochs: 3, optimizer: {Adam: {learning_rate: 0.01}}}
    log: {tensorboard: false}
    """
    result = train(load_recipe_text(textwrap.dedent(text)), runs_dir=tmp_path / "runs", progress=False)
    assert result.metrics["examples"] == {"train": 280, "validation": 40, "test": 80}
    assert result.metrics["test"]["accuracy"] >= 0.8  # chance is 0.25


@pytest.mark.skipif(importlib.util.find_spec("tensorflow_datasets") is not None,
                    reason="tensorflow-datasets is installed")
def test_tfds_without_the_package_says_what_to_install():
    problem = data_problem("source: tfds:mnist\n")
    assert problem.where == "<string>:4:11" and problem.path == "data.source"
    assert "pip install tensorflow-datasets" in problem.message


# --- augment -------------------------------------------------------------------------------------

AUGMENTATIONS = {
    "RandomFlip": {"mode": "horizontal"},
    "RandomCrop": {"height": 6, "width": 6},
    "RandomTranslation": {"height_factor": 0.25, "width_factor": 0.25},
    "RandomRotation": {"factor": 0.25},
    "RandomZoom": {"height_factor": 0.3},
    "RandomContrast": {"factor": 0.5},
    "RandomBrightness": {"factor": 0.5},
}


@pytest.mark.parametrize("layer", AUGMENTATIONS)
def test_augmentation_changes_training_batches_only(npz_digits, layer):
    spec = {"source": "npz", "path": npz_digits, "shuffle": False, "batch_size": 64}
    plain = build(spec)
    augmented = build({**spec, "augment": [{layer: AUGMENTATIONS[layer]}]})
    assert augmented.augment == [layer]
    x0, y0 = arrays(plain, "train")
    x1, y1 = arrays(augmented, "train")
    x2 = np.concatenate([x.numpy() for x, _ in augmented.train_epochs(1, 2)])  # the second epoch
    assert np.array_equal(y1, y0)  # the same examples, in the same order
    assert x1.shape != x0.shape or not np.allclose(x1, x0)  # augmented
    assert x1.shape == x2.shape and not np.allclose(x1, x2)  # drawn anew every epoch
    assert np.array_equal(x1, arrays(augmented, "train")[0])  # a function of the seed, epoch and step alone
    assert 0.0 <= x1.min() and 0.5 < x1.max() <= 1.0  # value_range 0..255 before the rescale: not clipped to 1
    if layer != "RandomCrop":  # see test_random_crop_gives_every_split_the_cropped_shape
        for split in ("validation", "test"):
            assert np.array_equal(arrays(augmented, split)[0], arrays(plain, split)[0]), split


def test_random_crop_gives_every_split_the_cropped_shape(npz_digits):
    data = build({"source": "npz", "path": npz_digits, "augment": [{"RandomCrop": {"height": 6, "width": 6}}]})
    assert data.element_shape == (6, 6, 1)
    for split in SPLITS:
        assert arrays(data, split)[0].shape[1:] == (6, 6, 1), split


def test_value_range_defaults_to_the_source_pixel_range(npz_digits):
    colour = [{"RandomBrightness": {"factor": 0.5}}, {"RandomContrast": {"factor": 0.5}}]
    for spec, expected in (({"source": "npz", "path": npz_digits}, [0, 255]), ({"source": "digits"}, [0, 1])):
        r = recipe({**spec, "augment": colour})
        value_range = load_source(r.data, r.seed).value_range
        layers = preprocess.augmentation_layers(r.data, r.seed, value_range, (8, 8, 1)).training
        assert [list(layer.value_range) for layer in layers] == [expected, expected], spec["source"]
    r = recipe({"source": "digits", "augment": [{"RandomContrast": {"factor": 0.5, "value_range": [0, 2]}}]})
    layers = preprocess.augmentation_layers(r.data, r.seed, (0.0, 1.0), (8, 8, 1)).training
    assert list(layers[0].value_range) == [0, 2]  # the recipe's wins


def test_unknown_augmentation_layer_is_located_with_did_you_mean():
    problem = data_problem("source: digits\naugment:\n  - RandomFlp\n")
    assert problem.where.startswith("<string>:6:") and problem.path == "data.augment[0]"
    assert "'RandomFlp' is not a Keras image preprocessing layer (did you mean 'RandomFlip'?)" in problem.message


@pytest.mark.parametrize("augment, path, phrase", [
    ("{RandomFlip: {mdoe: horizontal}}", "data.augment[0].RandomFlip.mdoe", "did you mean 'mode'"),
    ("{RandomRotation: {factor: -2}}", "data.augment[0].RandomRotation.factor", "Received: factor=-2"),
    ("{RandomContrast: {factor: 2}}", "data.augment[0].RandomContrast.factor", "in the range [0, 1]"),
])
def test_bad_augmentation_argument_is_located(augment, path, phrase):
    problem = data_problem(f"source: digits\naugment:\n  - {augment}\n")
    assert problem.where.startswith("<string>:6:") and problem.path == path
    assert phrase in problem.message


def test_bad_crop_size_is_located():
    problem = data_problem("source: digits\naugment:\n  - {RandomCrop: {height: 0, width: 4}}\n")
    assert problem.path.startswith("data.augment[0].RandomCrop")


def test_unknown_flip_mode_is_located():
    problem = data_problem("source: digits\naugment:\n  - {RandomFlip: {mode: diagonal}}\n")
    assert problem.path == "data.augment[0].RandomFlip.mode"


# --- normalize -----------------------------------------------------------------------------------


@pytest.mark.parametrize("keys, factor", [
    ({}, 1 / 255), ({"normalize": "rescale"}, 1 / 255), ({"normalize": "rescale", "rescale": 0.5}, 0.5),
    ({"normalize": "rescale", "rescale": "1/128"}, 1 / 128), ({"normalize": "none"}, 1.0),
], ids=["auto", "rescale", "rescale-0.5", "rescale-1/128", "none"])
def test_rescale_and_none(three_channels, keys, factor):
    spec = {"source": "npz", "path": three_channels, "shuffle": False}
    raw = build({**spec, "normalize": "none"})
    data = build({**spec, **keys})
    expected = {"normalize": "none"} if factor == 1.0 else {"normalize": "rescale", "rescale": pytest.approx(factor)}
    assert data.normalization == expected
    for split in SPLITS:
        assert np.allclose(arrays(data, split)[0], arrays(raw, split)[0] * factor, rtol=1e-6)
    assert arrays(raw, "train")[0].max() == 255.0


def test_standardize_uses_the_training_statistics(three_channels):
    spec = {"source": "npz", "path": three_channels, "shuffle": False}
    raw = build({**spec, "normalize": "none"})
    data = build({**spec, "normalize": "standardize"})
    train = arrays(data, "train")[0]
    assert np.allclose(train.mean(axis=(0, 1, 2)), 0, atol=1e-3)
    assert np.allclose(train.std(axis=(0, 1, 2)), 1, atol=1e-3)
    raw_train = arrays(raw, "train")[0]
    mean, std = raw_train.mean(axis=(0, 1, 2)), raw_train.std(axis=(0, 1, 2))
    assert len(set(np.round(mean))) == 3  # the channels really differ
    assert data.normalization["normalize"] == "standardize"
    assert np.allclose(data.normalization["mean"], mean, rtol=1e-4)
    assert np.allclose(data.normalization["variance"], std**2, rtol=1e-3)
    for split in ("validation", "test"):  # with the training split's statistics, not their own
        assert np.allclose(arrays(data, split)[0], (arrays(raw, split)[0] - mean) / std, atol=1e-3), split


def test_standardize_with_the_stored_record_gives_the_same_values(three_channels):
    spec = {"source": "npz", "path": three_channels, "shuffle": False, "normalize": "standardize"}
    first = build(spec)
    record = json.loads(json.dumps(first.normalization))  # as a run stores it
    again = build(spec, normalization=record)
    for split in SPLITS:
        assert np.allclose(arrays(again, split)[0], arrays(first, split)[0], atol=1e-5), split
