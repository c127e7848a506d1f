"""What `cnnctl check` warns about a model is true, and what it counts is what the model computes."""

from __future__ import annotations

import json

import pytest

from tests.conftest import DIGITS, cli, invoke
from tests.tolerance import most_diff

DEAD = """
name: dead
model:
  input: [8, 8, 1]
  graph:
    flat: {Flatten: {}, from: image}
    hidden: {Dense: {units: 32, activation: relu}}
    out: {Dense: {units: 10, activation: softmax}}
    unused: {Dense: {units: 10}, from: flat}
  outputs: [out]
"""


def test_a_node_that_feeds_no_output_is_named_and_left_out_of_the_counts(write_recipe):
    # cnnctl 93d106b printed "params: 1,490 (trainable 2,940, non-trainable -1,450)" and counted the dead node's
    # MACs for a graph like this one (issue 16, item 1)
    path = write_recipe(DEAD)
    result = cli("check", str(path), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [layer["name"] for layer in report["layers"]] == ["flat", "hidden", "out"]
    assert report["params"] == 64 * 32 + 32 + 32 * 10 + 10 == report["trainable_params"]
    assert report["non_trainable_params"] == 0
    assert report["macs"] == 64 * 32 + 32 * 10  # 2,368: the dead Dense's 640 are not computed by the model
    (warning,) = [w for w in report["warnings"] if "feeds no output" in w]
    assert warning.startswith("unused (Dense, at model.graph.unused) feeds no output")
    assert "warning: unused (Dense, at model.graph.unused) feeds no output" in result.stderr


def test_the_uneven_padding_warning_says_what_differs_and_the_onnx_export_agrees(digits_run, tmp_path):
    # cnnctl 93d106b warned that ONNX "will differ" on digits_cnn, whose ONNX export agrees to ~1e-6 (item 6)
    warnings = invoke("check", str(DIGITS), "--json")["warnings"]
    padding = [w for w in warnings if "SAME padding" in w]
    assert len(padding) == 2 and all("cnnctl's exports keep it" in w for w in padding)
    assert not any("ONNX" in w or "will differ" in w for w in warnings)
    run = digits_run.copy(tmp_path)
    exported = json.loads((run / "metrics.json").read_text())  # the savedmodel the recipe exports
    assert exported["exports"]["savedmodel"]["max_abs_diff"] <= most_diff("float32")
    result = cli("export", "onnx", str(run))
    assert result.exit_code == 0, result.output
    assert json.loads((run / "metrics.json").read_text())["exports"]["onnx"]["max_abs_diff"] <= most_diff("float32")


@pytest.mark.parametrize(("activation", "loss", "warned"), [
    ("null", None, True), ("relu", None, True), ("softmax", None, False),
    ("null", "{SparseCategoricalCrossentropy: {from_logits: true}}", False),
])
def test_an_output_that_is_not_probabilities_for_its_loss_is_warned_about(activation, loss, warned):
    # cnnctl 93d106b trained such a model to chance (test accuracy 0.125) without a word (item 5)
    sets = ["--set", f"model.layers[7].Dense.activation={activation}"]
    if loss:
        sets += ["--set", f"train.loss={loss}"]
    result = cli("check", str(DIGITS), *sets)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if "takes probabilities" in line]
    assert bool(lines) == warned, result.stderr
    if warned:
        (line,) = lines
        assert "output 'output' comes from dense_1 (Dense, model.layers[7])" in line
        assert "activation: softmax" in line and "from_logits: true" in line
