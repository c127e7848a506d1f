"""The Python API (``import cnnctl``): the README's example runs as written; runs and recipes are given any way."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

import cnnctl
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_readme_python_example_runs_as_written(tmp_path, monkeypatch, capsys):
    (block,) = re.findall(r"## Python\n.*?```python\n(.*?)```", README, re.S)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "recipes").symlink_to(ROOT / "recipes")  # the example names recipes/ as a clone has it
    exec(compile(block, "README.md", "exec"), {})
    run_line, metrics_line, export_line, params_line = capsys.readouterr().out.splitlines()
    run, test_accuracy = run_line.split()
    assert run.startswith("runs/digits_cnn/") and (tmp_path / run / "metrics.json").is_file()
    accuracy, macro_f1 = map(float, metrics_line.split())
    assert accuracy == pytest.approx(float(test_accuracy), abs=1e-6)  # eval measures what training measured
    assert 0.5 < accuracy <= 1 and 0 < macro_f1 <= 1  # two epochs of digits_cnn: well above chance (0.1)
    path, agreement = export_line.split()
    assert path.endswith("export/model_int8.tflite") and float(agreement) >= 0.95
    assert params_line == "2135"


def test_a_run_is_a_path_a_string_a_run_or_latest(digits_run, tmp_path):
    run = digits_run.copy(tmp_path)
    given = [str(run), run, cnnctl.Run(run)]
    results = [cnnctl.evaluate(target, write=False).metrics for target in given]
    assert results[0] == results[1] == results[2]
    assert cnnctl.evaluate("latest", runs_dir=tmp_path / "runs", write=False).metrics == results[0]
    assert not (run / "eval").exists()  # write=False


def test_a_recipe_is_a_path_or_a_recipe_and_mistakes_raise_the_errors_the_cli_maps_to_exit_codes(tmp_path):
    recipe = cnnctl.load_recipe(ROOT / "recipes" / "digits_cnn.yaml", ["train.epochs=3"])
    assert recipe.train.epochs == 3
    assert cnnctl.check(recipe).params == cnnctl.check(str(ROOT / "recipes" / "digits_cnn.yaml")).params == 2135
    with pytest.raises(cnnctl.RecipeError) as caught:
        cnnctl.load_recipe(ROOT / "recipes" / "digits_cnn.yaml", ["train.epochz=3"])
    assert "did you mean 'epochs'" in str(caught.value) and caught.value.exit_code == 2
    with pytest.raises(cnnctl.UserError, match="nope: no such run directory or model file"):
        cnnctl.evaluate(tmp_path / "nope")


def test_importing_cnnctl_costs_no_tensorflow():
    code = "import sys, cnnctl; print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_predictions_are_made_once_as_they_are_read_and_a_failure_stays_a_failure(digits_run, tmp_path):
    import numpy as np

    np.save(tmp_path / "one.npy", np.zeros((8, 8, 1), "float32"))
    np.save(tmp_path / "stack.npy", np.ones((3, 8, 8, 1), "float32"))
    predictions = cnnctl.predict(digits_run.path, tmp_path / "one.npy", top_k=2)  # one path, not a list
    assert [p["input"] for p in predictions] == [str(tmp_path / "one.npy")]
    assert list(predictions) == predictions.to_dict()["predictions"]  # read again: the same, not made again
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)  # a header, then nothing
    failing = cnnctl.predict(digits_run.path, [tmp_path / "stack.npy", tmp_path / "images"])
    for _ in range(2):  # the stack's three predictions come first; the image fails, each time it is read
        with pytest.raises(cnnctl.UserError, match=r"broken\.png"):
            list(failing)
    with pytest.raises(cnnctl.UserError, match="top_k is 1 or more"):
        cnnctl.predict(digits_run.path, [tmp_path / "one.npy"], top_k=0)
