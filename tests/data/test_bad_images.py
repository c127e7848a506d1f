"""Image files cut short are found when the folder is listed, before training starts, in every format; files
that only look odd at their end (data after the image) are decoded to be sure, and kept."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from cnnctl.data.sources.images import BadFiles
from cnnctl.recipe import load_recipe_text
from tests import datafiles as files
from tests.conftest import datasets_of


def recipe(root):
    return load_recipe_text(
        f"name: t\ndata: {{source: image_dir, path: {root}, image_size: [8, 8], color_mode: grayscale}}\n"
        "model: {input: [8, 8, 1], layers: [Flatten, {Dense: {units: 2, activation: softmax}}]}\n", "r.yaml")


def encoded(fmt: str) -> bytes:
    pixels = (np.random.default_rng(0).random((24, 24, 3)) * 255).astype("uint8")
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP"])
def test_an_image_cut_short_is_refused_when_the_folder_is_listed(tmp_path, fmt):
    root = files.write_class_folders(tmp_path / "photos", {"cat": 6, "dog": 6})
    whole = encoded(fmt)
    cut = root / "cat" / f"cut.{fmt.lower()}"
    cut.write_bytes(whole[: len(whole) * 3 // 4])  # a valid header: only its end is missing
    with pytest.raises(BadFiles) as info:
        datasets_of(recipe(root))  # listing and splitting only: no epoch is read
    assert info.value.files == [str(cut)]
    assert "1 image file cannot be decoded" in str(info.value) and "on_error: skip" in str(info.value)


def test_an_image_with_data_after_its_end_is_decoded_and_kept(tmp_path):
    root = files.write_class_folders(tmp_path / "photos", {"cat": 6, "dog": 6})
    (root / "cat" / "trailer.png").write_bytes(encoded("PNG") + bytes(10_000))  # no IEND in its last 4 KB
    data = datasets_of(recipe(root))
    assert sum(data.sizes.values()) == 13
