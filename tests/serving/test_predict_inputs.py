"""`cnnctl predict` on a folder of mixed inputs: WebP decoded like PNG, files it cannot read named on stderr, and
`--on-error skip` leaving out a .npy array of the wrong shape (naming it) as it leaves out a broken image.

The run is the session's digits run (tests/conftest.py), read, not changed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests import datafiles as files
from tests.conftest import cli, invoke_fails

pytestmark = pytest.mark.slow


@pytest.fixture
def mixed(tmp_path) -> Path:
    """A folder holding one digit as PNG, lossless WebP and TIFF, a good and a wrong-shape .npy, and a text file."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    x, _ = files.digits(1)
    image = Image.fromarray(x[0], mode="L")
    image.save(folder / "digit.png")
    image.save(folder / "digit.webp", lossless=True)
    image.save(folder / "digit.tiff")
    np.save(folder / "good.npy", (x[0] / 255.0).astype("float32")[..., None])
    np.save(folder / "wrong.npy", np.zeros((3, 3), "float32"))
    (folder / "notes.txt").write_text("where these came from\n")
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")  # hidden: not worth a word
    return folder


def test_a_mixed_folder_with_on_error_skip(digits_run, mixed):
    result = cli("predict", str(digits_run.path), str(mixed), "--on-error", "skip", "--json")
    assert result.exit_code == 0, (result.output, result.exception)
    predicted = {Path(p["input"]).name: p["outputs"] for p in json.loads(result.stdout)["predictions"]}
    assert sorted(predicted) == ["digit.png", "digit.webp", "good.npy"]
    assert predicted["digit.webp"] == predicted["digit.png"]  # lossless: the same pixels, the same batch
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 2, result.stderr
    skipped_files, skipped_array = warnings
    assert "skipped 2 files that are neither images" in skipped_files and ".webp" in skipped_files
    assert str(mixed / "digit.tiff") in skipped_files and str(mixed / "notes.txt") in skipped_files
    assert ".DS_Store" not in result.stderr
    assert f"skipped (--on-error skip) {mixed / 'wrong.npy'}: an array of shape [3, 3]" in skipped_array


def test_without_skip_a_wrong_shape_array_stops_predict_and_tiff_alone_is_named(digits_run, mixed, tmp_path):
    message = invoke_fails("predict", str(digits_run.path), str(mixed))
    assert f"{mixed / 'wrong.npy'}: an array of shape [3, 3]" in message
    alone = tmp_path / "tiffs"
    alone.mkdir()
    (mixed / "digit.tiff").rename(alone / "digit.tiff")
    message = invoke_fails("predict", str(digits_run.path), str(alone))
    assert "no images" in message and f"it holds 1 other file: {alone / 'digit.tiff'}" in message
