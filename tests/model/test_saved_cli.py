"""`cnnctl eval`, `predict` and `export` on model files that could run code: refused with exit 2 and one
message, loaded only with --unsafe (after a warning).

The run is real: a copy of the session's digits run (tests/conftest.py), without its
exports; its model.keras is then replaced by a model with a Lambda layer whose code
creates a marker file when it runs, or by the run's own archive with config.json
rewritten to name a class from ``os``.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from tests.conftest import cli, invoke, invoke_fails
from tests.model.test_saved import touching

pytestmark = pytest.mark.slow


@pytest.fixture
def trained(digits_run, tmp_path) -> Path:
    """A copy of the session's digits run, without the export its recipe wrote."""
    return digits_run.copy(tmp_path / "trained", without=("export",))


@pytest.fixture
def lambda_run(trained, tmp_path) -> tuple[Path, Path]:
    """(a copy of the run whose model.keras has a Lambda layer 'doubler', the marker its code creates)."""
    run = Path(shutil.copytree(trained, tmp_path / "run"))
    marker = tmp_path / "lambda-ran"
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Lambda(touching(str(marker)), name="doubler")(inputs)
    outputs = keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(x))
    keras.Model(inputs, outputs, name="tiny").save(run / "model.keras")
    marker.unlink(missing_ok=True)
    return run, marker


@pytest.fixture
def os_run(trained, tmp_path) -> Path:
    """A copy of the run whose model.keras names a class ``system`` of module ``os`` in place of its Dense."""
    run = Path(shutil.copytree(trained, tmp_path / "run"))
    with zipfile.ZipFile(trained / "model.keras") as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    dense = next(entry for entry in config["config"]["layers"] if entry["class_name"] == "Dense")
    dense.update(module="os", class_name="system", registered_name=None)
    dense["config"] = {"name": "payload", "command": f"touch {tmp_path / 'os-ran'}"}
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(run / "model.keras", "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return run


def commands(run: Path, tmp_path: Path) -> list[list[str]]:
    example = tmp_path / "one.npy"
    np.save(example, np.zeros((8, 8, 1), "float32"))
    return [["eval", str(run)], ["predict", str(run), str(example)], ["export", "keras", str(run)],
            ["eval", str(run / "model.keras")]]


def test_a_lambda_model_is_refused_by_eval_predict_and_export_and_its_code_does_not_run(lambda_run, tmp_path):
    run, marker = lambda_run
    for args in commands(run, tmp_path):
        error = invoke_fails(*args)
        assert "Lambda layer 'doubler' (keras.layers.Lambda)" in error, (args, error)
        assert "could run code" in error and "--unsafe" in error
        assert not marker.exists(), args
    assert not (run / "export").exists()  # export refused before writing anything


def test_a_class_from_os_is_refused_by_every_command(os_run, tmp_path):
    for args in commands(os_run, tmp_path):
        error = invoke_fails(*args)
        assert "class 'system' from module 'os' (in layer 'payload')" in error, (args, error)
    assert not (tmp_path / "os-ran").exists()


def test_unsafe_loads_a_trusted_lambda_model_after_a_warning(lambda_run, tmp_path):
    run, marker = lambda_run
    result = cli("eval", str(run), "--unsafe", "--json")
    assert result.exit_code == 0, (result.output, result.exception)
    assert "warning: --unsafe" in result.stderr and "Lambda layer 'doubler'" in result.stderr
    assert marker.exists()  # the code ran: it is real, and --unsafe is what let it
    assert json.loads(result.stdout)["examples"] == 360
    example = tmp_path / "one.npy"
    np.save(example, np.zeros((8, 8, 1), "float32"))
    (prediction,) = invoke("predict", str(run), str(example), "--unsafe", "--json")["predictions"]
    assert len(prediction["outputs"]["tiny"]["top"]) == 3
    exported = cli("export", "keras", str(run), "--unsafe")
    assert exported.exit_code == 0 and "checked against Keras" in exported.stdout
    assert exported.stderr.count("warning: --unsafe") == 1  # for the run's model, not again for the check's reload


def test_unsafe_is_in_the_help_of_each_command():
    for command in ("eval", "predict", "export"):
        result = cli(command, "--help")
        assert "--unsafe" in result.output and "trust" in result.output, command


def test_the_run_of_a_trusted_model_still_loads_without_unsafe(trained):
    assert invoke("eval", str(trained), "--json")["examples"] == 360
