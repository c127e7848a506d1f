"""A csv of whole-number pixels far below 255 (scikit-learn's digits: 0..16) is taken as 8-bit and rescaled by
1/255 by ``normalize: auto``: ``check --data`` and ``train`` say so on stderr, with the key that sets the scale."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from tests import datafiles as files
from tests.conftest import cli

RECIPE = """\
name: digits_csv
seed: 3
data:
  source: csv
  path: {path}
  reshape: [8, 8, 1]
  split: {{validation: 0.1, test: 0.1}}
  batch_size: 32
model:
  input: [8, 8, 1]
  layers:
    - Flatten
    - Dense: {{units: 10, activation: softmax}}
train: {{epochs: 1}}
log: {{tensorboard: false}}
"""


def write_raw_digits(path: Path, count: int = 120) -> Path:
    """scikit-learn's digits as they come: whole numbers 0..16, 64 pixel columns and a label."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*(f"p{i}" for i in range(64)), "label"])
        for image, label in zip(bunch.images[:count], bunch.target[:count], strict=True):
            writer.writerow([*np.round(image).astype(int).reshape(-1).tolist(), int(label)])
    return path


def recipe_for(tmp_path: Path, data: Path) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE.format(path=data))
    return path


def run(tmp_path: Path, monkeypatch, *args: str):
    monkeypatch.chdir(tmp_path)
    result = cli(*args)
    assert result.exit_code == 0, result.output + result.stderr
    return result


WARNING = ("digits.csv (data.path): pixels are whole numbers 0..16, taken as 8-bit (0..255) and multiplied by "
           "data.rescale 1/255 (data.normalize: auto): the model sees 0..0.0627; if 16 is the largest value they "
           "can take, set data.rescale: 1/16 (or data.normalize: none to keep them as they are)")


@pytest.mark.slow
def test_check_data_warns_that_digits_0_to_16_are_rescaled_as_8_bit(tmp_path, monkeypatch):
    recipe = recipe_for(tmp_path, write_raw_digits(tmp_path / "digits.csv"))
    result = run(tmp_path, monkeypatch, "check", str(recipe), "--data")
    assert f"warning: {tmp_path / 'digits.csv'}" in result.stderr and WARNING in result.stderr
    assert result.stderr.count("data.rescale") == 2  # one warning
    quiet = run(tmp_path, monkeypatch, "check", str(recipe), "--data", "--set", "data.rescale=1/16")
    assert "warning" not in quiet.stderr
    kept = run(tmp_path, monkeypatch, "check", str(recipe), "--data", "--set", "data.normalize=none")
    assert "warning" not in kept.stderr


@pytest.mark.slow
def test_8_bit_pixels_in_a_csv_are_rescaled_without_a_warning(tmp_path, monkeypatch):
    recipe = recipe_for(tmp_path, files.write_csv(tmp_path / "pixels.csv", count=120))  # 0..255
    result = run(tmp_path, monkeypatch, "check", str(recipe), "--data")
    assert "warning" not in result.stderr
    assert "rescaled by 0.00392157" in result.output


@pytest.mark.slow
def test_train_warns_that_digits_0_to_16_are_rescaled_as_8_bit(tmp_path, monkeypatch):
    recipe = recipe_for(tmp_path, write_raw_digits(tmp_path / "digits.csv"))
    result = run(tmp_path, monkeypatch, "train", str(recipe), "--runs-dir", str(tmp_path / "runs"))
    assert WARNING in result.stderr
