"""A trained model.keras copied out of its run, given to `cnnctl predict` and `cnnctl eval --data DIR`.

Outside its run nothing records the model's preprocessing (digits: stored 0-1, the
model trained on 0-1), so image files go in as pixels 0-255: both commands warn and
say what to give instead, and both take a folder of images the same way. The run is a
copy of the session's digits run (tests/conftest.py).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import cli
from tests.serving.test_outputs import digit_pngs

pytestmark = pytest.mark.slow

WARNING = "is outside any run, so nothing records how its inputs were preprocessed: cnnctl assumes none"


@pytest.fixture
def bare(digits_run, tmp_path) -> tuple[Path, Path, Path]:
    """(a copy of the run, its model.keras copied out of it, a folder of 8x8 digit PNGs in class folders 0..9)."""
    run = digits_run.copy(tmp_path, without=("export",))
    alone = tmp_path / "alone" / "model.keras"
    alone.parent.mkdir()
    shutil.copy(run / "model.keras", alone)
    return run, alone, digit_pngs(tmp_path / "pngs", count=60)


def test_predict_of_a_model_copied_out_of_its_run_warns_what_it_assumes(bare):
    run, alone, pngs = bare
    result = cli("predict", str(alone), str(pngs), "--top-k", "1")
    assert result.exit_code == 0, (result.output, result.exception)
    assert result.stderr.count(WARNING) == 1, result.stderr
    assert "image files go in as pixels 0-255" in result.stderr and "Give its run directory instead" in result.stderr
    for model in (run, run / "model.keras"):  # the run (or its model in place) records its preprocessing
        result = cli("predict", str(model), str(pngs), "--top-k", "1")
        assert result.exit_code == 0 and "warning" not in result.stderr, (model, result.stderr)


def test_eval_of_a_bare_model_on_a_folder_takes_the_images_as_predict_does(bare):
    _, alone, pngs = bare
    result = cli("eval", str(alone), "--data", str(pngs), "--json")
    assert result.exit_code == 0, (result.output, result.exception)
    assert result.stderr.count(WARNING) == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["examples"] == 60
    predicted = cli("predict", str(alone), str(pngs), "--top-k", "1", "--json")
    right = [Path(p["input"]).parent.name == next(iter(p["outputs"].values()))["top"][0]["class"]
             for p in json.loads(predicted.stdout)["predictions"]]
    assert report["metrics"]["accuracy"] == pytest.approx(sum(right) / len(right), abs=1e-6)
