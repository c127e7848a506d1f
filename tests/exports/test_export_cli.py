"""`cnnctl export` in a fresh process, on models the export review found hard: cnnctl's own layers, a
recurrent layer TFLite cannot convert, a single logit, and targets that must not be replaced.

A fresh process matters: cnnctl's layers must be registered by loading a model, not by
something the test process happened to import before.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from tests.conftest import invoke, invoke_fails, run_cli, train_text

pytestmark = pytest.mark.slow

CUSTOM = """\
name: custom
seed: 2
data: {batch_size: 64}
model:
  input: [8, 8, 1]
  layers:
    - Conv2D: {filters: 16, kernel_size: 3, padding: same, activation: relu}
    - LocalResponseNormalization: {depth_radius: 2}
    - SqueezeExcite: {reduction: 4}
    - GlobalAveragePooling2D
    - Dense: {units: 10, activation: softmax}
train: {epochs: 2}
log: {tensorboard: false}
"""

LSTM = """\
name: rows
data: {{source: npz, path: {path}, batch_size: 64}}
model:
  input: [8, 8]
  layers:
    - LSTM: {{units: 8}}
    - Dense: {{units: 10, activation: softmax}}
train: {{epochs: 1}}
log: {{tensorboard: false}}
"""

LOGIT = """\
name: logit
seed: 1
data: {source: synthetic, shape: [8, 8, 1], classes: 2, count: 400, batch_size: 32}
model:
  input: [8, 8, 1]
  layers:
    - Flatten
    - Dense: {units: 1}
train:
  epochs: 8
  optimizer: {Adam: {learning_rate: 1.0e-2}}
  loss: {BinaryCrossentropy: {from_logits: true}}
  metrics: [{BinaryAccuracy: {threshold: 0.0}}]
log: {tensorboard: false}
"""


GRAPH = """\
name: graph
seed: 1
data: {source: digits, split: {validation: 0.1, test: 0.2}, batch_size: 64}
model:
  input: [8, 8, 1]
  layers: [{GraphConv: {units: 2, connectivity: 8}}, Flatten, {Dense: {units: 10, activation: softmax}}]
train: {epochs: 1}
log: {tensorboard: false}
"""

# docs/export.md's Keras example, in a fresh Python that has imported only what FIRST says
LOAD = """{first}
import keras, numpy as np
model = keras.saving.load_model({path!r})
print(np.asarray(model(np.zeros((1, 8, 8, 1), "float32"))).shape)
"""


def trained(text: str, tmp_path) -> str:
    return str(train_text(text, tmp_path / "runs"))


@pytest.fixture(scope="module")
def custom(tmp_path_factory) -> str:
    """A run whose model uses LocalResponseNormalization and SqueezeExcite (registered by cnnctl)."""
    return trained(CUSTOM, tmp_path_factory.mktemp("custom"))


def test_a_run_with_cnnctls_own_layers_exports_and_evaluates_in_a_fresh_process(custom):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:  # two fresh processes at once: export writes export/, eval eval/
        exported, evaluated = pool.map(lambda args: run_cli(*args), [("export", "tflite", custom),
                                                                     ("eval", custom, "--json")])
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert json.loads(evaluated.stdout)["examples"] == 360
    for fmt in ("savedmodel", "onnx"):  # in this process: the layers' conversion, not their registration
        assert "checked against Keras" in invoke("export", fmt, custom)


def test_an_lstm_tflite_export_is_refused_with_what_to_do(tmp_path):
    from click.testing import CliRunner

    from cnnctl.cli import main
    from tests.datafiles import write_npz

    rows = write_npz(tmp_path / "rows.npz", x=lambda x, y: x, y=lambda x, y: y)  # [N, 8, 8]: 8 rows of 8 pixels
    run = trained(LSTM.format(path=rows), tmp_path)
    result = CliRunner().invoke(main, ["export", "tflite", run])  # TF 2.21's converter needs them unrolled
    assert result.exit_code == 2 and "Traceback" not in result.output  # refused before converting
    assert "give it `unroll: true`" in result.stderr and "loc(" not in result.stderr
    assert not os.path.exists(os.path.join(run, "export", "model.tflite"))


def test_a_single_logit_is_read_as_two_classes_by_the_check(tmp_path):
    run = trained(LOGIT, tmp_path)
    invoke("export", "tflite", run, "--quantize", "float16")
    record = json.loads(open(os.path.join(run, "metrics.json")).read())["exports"]["tflite_float16"]
    evaluated = invoke("eval", run, "--json")["metrics"]
    # a logit thresholded at 0.5 instead of 0 would give a different accuracy from Keras's own metric
    assert record["keras_accuracy"] == pytest.approx(evaluated["binary_accuracy"], abs=1e-6)


def test_force_replaces_only_an_earlier_export(custom, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    for target in (os.path.join(custom, "model.keras"), str(notes)):
        assert "not a tflite file cnnctl exported" in invoke_fails("export", "tflite", custom, "--out", target,
                                                                   "--force")
    assert notes.read_text() == "mine"
    invoke("eval", custom)  # the run's model is intact
    out = str(tmp_path / "m.tflite")
    invoke("export", "tflite", custom, "--out", out)
    assert "exists; use --force" in invoke_fails("export", "tflite", custom, "--out", out)
    invoke("export", "tflite", custom, "--out", out, "--force")


def test_an_unwritable_target_folder_is_a_clear_error(custom, tmp_path):
    import subprocess

    locked = tmp_path / "locked"
    locked.mkdir()
    if os.geteuid() == 0:  # root writes through permissions: make the folder immutable instead
        if subprocess.run(["chattr", "+i", str(locked)], capture_output=True).returncode != 0:
            pytest.skip("running as root on a file system without chattr +i: no folder is unwritable")
    else:
        locked.chmod(0o500)
    try:
        assert "cannot write" in invoke_fails("export", "tflite", custom, "--out", str(locked / "m.tflite"))
    finally:
        subprocess.run(["chattr", "-i", str(locked)], capture_output=True)
        locked.chmod(0o700)


def renamed_layers(source: str, target, old: str, new: dict) -> str:
    """A copy of the .keras archive ``source`` whose objects registered as ``old`` (at any depth) are updated with
    ``new`` (keys of the saved object: module, class_name, registered_name)."""
    def change(node):
        if isinstance(node, list):
            for item in node:
                change(item)
        elif isinstance(node, dict):
            if node.get("registered_name") == old:
                node.update(new)
            for value in node.values():
                change(value)

    with zipfile.ZipFile(source) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    change(config)
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return str(target)


def test_a_graphconv_keras_export_loads_in_plain_keras_after_import_cnnctl_layers(tmp_path):
    run = trained(GRAPH, tmp_path)
    invoke("export", "keras", run)
    path = os.path.join(run, "export", "serving.keras")

    def load(first: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", LOAD.format(first=first, path=path)], capture_output=True,
                              text=True, timeout=300)

    for first in ("", "import cnnctl"):  # plain Keras, and `import cnnctl` alone (it imports no Keras): the failure
        failed = load(first)                # docs/export.md describes
        assert failed.returncode == 1, (first, failed.stdout)
        assert "could not be deserialized properly" in failed.stderr, failed.stderr[-2000:]
        assert "Could not locate class 'GraphConv'" in failed.stderr
    loaded = load("import cnnctl.layers")
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert loaded.stdout.splitlines()[-1] == "(1, 10)"

    # through cnnctl: a layer saved as cnnctl's that this cnnctl does not have (from another cnnctl version)
    np.save(tmp_path / "x.npy", np.zeros((8, 8, 1), "float32"))
    newer = renamed_layers(path, tmp_path / "newer.keras", "cnnctl>GraphConv",
                           {"class_name": "GraphConv2", "registered_name": "cnnctl>GraphConv2"})
    message = invoke_fails("predict", newer, str(tmp_path / "x.npy"))
    assert ("uses 'GraphConv2', saved as cnnctl's own layer, which this cnnctl does not have (its layers: GraphConv, "
            "LocalResponseNormalization, SqueezeExcite): the model was saved by another version of cnnctl") in message
    assert "--unsafe" not in message
    # --unsafe on a class of a package that is not imported: Keras's class is named, not its "Functional" line
    foreign = renamed_layers(path, tmp_path / "foreign.keras", "cnnctl>GraphConv",
                             {"module": "mypkg.layers", "class_name": "Gadget", "registered_name": "mypkg>Gadget"})
    message = invoke_fails("predict", foreign, str(tmp_path / "x.npy"), "--unsafe")
    assert "Keras cannot locate class 'Gadget'" in message and "import the package that defines it" in message


def test_an_out_with_a_trailing_slash_is_a_folder_for_the_export(custom, tmp_path):
    invoke("export", "onnx", custom, "--out", f"{tmp_path / 'dir_onnx'}/")
    assert (tmp_path / "dir_onnx" / "model.onnx").is_file() and (tmp_path / "dir_onnx" / "model.labels.txt").is_file()
    invoke("export", "keras", custom, "--out", f"{tmp_path / 'dir_keras'}/")  # not refused for its suffix
    assert (tmp_path / "dir_keras" / "serving.keras").is_file()
    assert "exists; use --force" in invoke_fails("export", "onnx", custom, "--out", f"{tmp_path / 'dir_onnx'}/")
    exports = json.loads(open(os.path.join(custom, "metrics.json")).read())["exports"]
    assert exports["onnx"]["path"] == str((tmp_path / "dir_onnx" / "model.onnx").resolve())
