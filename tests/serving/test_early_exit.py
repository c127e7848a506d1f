"""The early-exit recipe trains as shipped, and ``cnnctl eval`` reports each exit's accuracy and compute.

An exit's compute is the multiply-adds of the layer calls between the input and it (each once), alone
and with the exits before it; the last, with the earlier exits, is the whole model, as ``cnnctl check``
counts it. The per-output cost is checked by formula on hand-written graphs, shared layers included.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import pytest

from cnnctl.model import build, check_report
from cnnctl.model.report import exit_costs, output_costs, path_cost
from cnnctl.recipe import load_recipe, load_recipe_text
from tests.conftest import ROOT, invoke, train_text

RECIPE = ROOT / "recipes" / "early_exit.yaml"

TINY = """\
name: tiny_exits
model:
  input: [8, 8, 1]
  graph:
    a: {Conv2D: {filters: 3, kernel_size: 3}, from: image}        # valid: 6x6x3
    flat_a: Flatten
    early: {Dense: {units: 10, activation: softmax}}
    b: {Conv2D: {filters: 4, kernel_size: 2, strides: 2}, from: a}  # 3x3x4
    flat_b: Flatten
    late: {Dense: {units: 10, activation: softmax}}
  outputs: [early, late]
"""

SHARED = """\
name: shared_head
model:
  input: [8, 8, 1]
  graph:
    trunk: {Conv2D: {filters: 4, kernel_size: 3, padding: same}, from: image}
    max: {MaxPooling2D: {pool_size: 2}, from: trunk}
    flat_max: Flatten
    head: {Dense: {units: 6}}                              # one layer ...
    avg: {AveragePooling2D: {pool_size: 2}, from: trunk}
    flat_avg: Flatten
    head_again: {share: head, from: flat_avg}              # ... called twice
    a: {Dense: {units: 3, activation: softmax}, from: head}
    b: {Dense: {units: 3, activation: softmax}, from: head_again}
    both: {Add: {}, from: [head, head_again]}
    c: {Dense: {units: 3, activation: softmax}}
  outputs: [a, b, c]
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return train_text(RECIPE.read_text(encoding="utf-8"), tmp_path_factory.mktemp("early_exit") / "runs")


@pytest.mark.slow
def test_training_measures_the_test_split_as_eval_does(run):
    """One computation of test metrics: each exit's loss is the exact mean over the split, not a mean of batch
    means, so metrics.json and ``cnnctl eval`` agree and the total is the weighted sum of the exits' losses."""
    trained = json.loads((run / "metrics.json").read_text())["test"]
    evaluated = invoke("eval", str(run), "--json")["metrics"]
    assert set(trained) == set(evaluated) >= {"loss", "exit1_loss", "exit2_loss", "exit3_loss", "exit1_accuracy"}
    for name, value in trained.items():  # float32 sums over 360 examples, batched alike or not
        assert value == pytest.approx(evaluated[name], rel=1e-5, abs=1e-6), name
    weighted = 0.5 * trained["exit1_loss"] + 0.75 * trained["exit2_loss"] + 1.0 * trained["exit3_loss"]
    assert trained["loss"] == pytest.approx(weighted, rel=1e-5)  # the recipe's loss_weights; no regularizer


@pytest.mark.slow
def test_eval_reports_each_exits_accuracy_and_compute(run):
    report = invoke("eval", str(run), "--json")
    trained = json.loads((run / "metrics.json").read_text())["test"]
    exits = report["exits"]
    assert [e["output"] for e in exits] == ["exit1", "exit2", "exit3"]
    for e in exits:  # the per-output accuracy the training run measured on the same test split
        assert e["accuracy"] == pytest.approx(trained[f"{e['output']}_accuracy"], abs=1e-6)
    # as shipped, the recipe's stated accuracies (header: 0.9694 / 0.9833 / 0.9806), less a little
    assert [e["accuracy"] >= floor for e, floor in zip(exits, (0.95, 0.96, 0.975), strict=True)] == [True] * 3
    macs = [e["macs"] for e in exits]
    with_earlier = [e["macs_with_earlier"] for e in exits]
    assert macs[0] < macs[1] < macs[2] and with_earlier[0] < with_earlier[1] < with_earlier[2]
    checked = check_report(build(load_recipe(str(RECIPE))))
    assert with_earlier[-1] == report["full_model"]["macs"] == checked["macs"] == 163_072
    heads = {layer["name"]: layer["macs"] for layer in checked["layers"]}
    assert macs[-1] == checked["macs"] - heads["exit1"] - heads["exit2"]  # the last exit alone skips their heads
    assert with_earlier[1] == macs[1] + heads["exit1"]
    for e in exits:
        assert e["flops"] == 2 * e["macs"] and e["share"] == pytest.approx(e["macs"] / checked["macs"])
    assert json.loads((run / "eval" / "test" / "report.json").read_text())["exits"] == exits

    text = invoke("eval", str(run))
    table = text[text.index("exit   accuracy"):]
    for e in exits:
        assert f"{e['output']}    {e['accuracy']:.4f}" in table and f"{e['macs']:,} ({100 * e['share']:.1f} %)" in table
    assert "FLOPs = 2 x MACs" in table and table.index("exit3") < table.index("output exit1:")


@pytest.mark.slow
def test_first_exit_costs_its_layers_by_formula(tmp_path):
    """An untrained .keras file outside any run, evaluated on the digits recipe's test split."""
    build(load_recipe_text(TINY, "tiny.yaml")).model.save(tmp_path / "tiny.keras")
    report = invoke("eval", str(tmp_path / "tiny.keras"), "--data", str(RECIPE), "--json")
    conv_a = 6 * 6 * 3 * (3 * 3 * 1)  # output pixels x filters x kernel x input channels
    early = 6 * 6 * 3 * 10
    conv_b = 3 * 3 * 4 * (2 * 2 * 3)
    late = 3 * 3 * 4 * 10
    first, last = report["exits"]
    assert (first["macs"], first["flops"]) == (conv_a + early, 2 * (conv_a + early)) == (2052, 4104)
    assert last["macs"] == conv_a + conv_b + late
    assert last["macs_with_earlier"] == report["full_model"]["macs"] == conv_a + early + conv_b + late


def test_a_layer_on_the_paths_of_several_exits_counts_once_in_each_and_per_call(tmp_path):
    built = build(load_recipe_text(SHARED, "shared.yaml"))
    trunk = 8 * 8 * 4 * 9
    head = 4 * 4 * 4 * 6  # one call of the shared Dense on a flattened 4x4x4 map
    out = 6 * 3
    alone = [trunk + head + out, trunk + head + out, trunk + 2 * head + out]  # c reads both calls of head
    assert [c["macs"] for c in output_costs(built.model)] == alone
    full = trunk + 2 * head + 3 * out
    assert path_cost(built.model.outputs)["macs"] == full == check_report(built)["macs"]
    costs = exit_costs(built.model)
    assert [e["macs_with_earlier"] for e in costs["exits"]] == [alone[0], trunk + 2 * head + 2 * out, full]

    built.model.save(tmp_path / "shared.keras")  # what eval loads, and inside another model (a serving export)
    loaded = keras.saving.load_model(tmp_path / "shared.keras")
    assert [c["macs"] for c in output_costs(loaded)] == alone
    inputs = keras.Input((8, 8, 1))
    wrapped = keras.Model(inputs, loaded(keras.layers.Rescaling(0.5)(inputs)))
    assert exit_costs(wrapped) == costs


def test_a_sequential_models_one_output_costs_the_whole_model():
    built = build(load_recipe(str(ROOT / "recipes" / "digits_cnn.yaml")))
    assert [c["macs"] for c in output_costs(built.model)] == [check_report(built)["macs"]] == [14_460]
