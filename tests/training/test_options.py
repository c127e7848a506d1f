"""The training options of a recipe, resolved into Keras objects without training.

Schedules (``decay_steps: auto``), class weights (sklearn's ``balanced``; by index or class name), dtype policies
(``auto`` on the GPUs that gain; no global policy leaks), and what reaches
``model.compile``. Callbacks are in test_callbacks.py, real training runs in test_trainer.py.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from cnnctl.errors import RecipeError
from cnnctl.model import build
from cnnctl.model.compile import compile_model
from cnnctl.model.objects import build_optimizer
from cnnctl.model.precision import policy_scope, resolve_policy
from cnnctl.model.schedules import PLACEHOLDER_STEPS
from cnnctl.recipe import load_recipe_text
from cnnctl.training.options import balanced_weights, class_weights
from cnnctl.training.preflight import check_training
from cnnctl.training.summary import format_summary

CHAIN = """
name: t
model:
  input: [8, 8, 1]
  layers:
    - Conv2D: {filters: 4, kernel_size: 3, padding: same, activation: relu}
    - Flatten
    - Dense: {units: 10, activation: softmax}
"""

TWO_OUTPUTS = """
name: t
model:
  input: [8, 8, 1]
  graph:
    flat: {Flatten: {}, from: image}
    label: {Dense: {units: 10, activation: softmax}}
    early: {Dense: {units: 10, activation: softmax}, from: flat}
  outputs: [label, early]
"""


def recipe(train: str = "", model: str = CHAIN):
    text = textwrap.dedent(model).lstrip() + ("train:\n" + textwrap.indent(textwrap.dedent(train), "  ")
                                              if train else "")
    return load_recipe_text(text, "recipe.yaml")


def problem_of(excinfo) -> str:
    return str(excinfo.value.problems[0])


# -- learning-rate schedules ---------------------------------------------------------------------

COSINE = """
optimizer: {Adam: {learning_rate: {CosineDecay: {initial_learning_rate: 0.0, warmup_target: 1.0e-3,
                                                 warmup_steps: 20, decay_steps: auto}}}}
"""


def schedule_of(optimizer):
    return optimizer._learning_rate  # Keras keeps the schedule here; .learning_rate is its current value


def test_decay_steps_auto_is_the_run_steps_minus_warmup():
    schedule = schedule_of(build_optimizer(recipe(COSINE), total_steps=100))
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay)
    assert schedule.decay_steps == 80 and schedule.warmup_steps == 20 and schedule.warmup_target == 1e-3
    assert schedule.initial_learning_rate == 0.0


def test_decay_steps_auto_without_data_uses_the_placeholder():
    schedule = schedule_of(build_optimizer(recipe(COSINE)))  # `cnnctl check`: no step count
    assert schedule.decay_steps == PLACEHOLDER_STEPS


def test_first_decay_steps_auto_for_restarts_and_ints_become_floats():
    spec = ("optimizer: {SGD: {learning_rate: {CosineDecayRestarts: "
            "{initial_learning_rate: 1, first_decay_steps: auto}}}}")
    schedule = schedule_of(build_optimizer(recipe(spec), total_steps=50))
    assert schedule.first_decay_steps == 50
    assert isinstance(schedule.initial_learning_rate, float)  # an int would make Keras compute in int32


def test_warmup_longer_than_the_run_is_located_at_warmup_steps():
    with pytest.raises(RecipeError) as excinfo:
        build_optimizer(recipe(COSINE), total_steps=20)
    message = problem_of(excinfo)
    assert message.startswith("recipe.yaml:11:")  # the line of warmup_steps
    assert "train.optimizer.Adam.learning_rate.CosineDecay.warmup_steps:" in message
    assert "20 training steps minus warmup_steps (20)" in message


@pytest.mark.parametrize("name", ["ExponentialDecay", "InverseTimeDecay", "PolynomialDecay"])
def test_every_decay_schedule_takes_auto(name):
    rate = ", decay_rate: 0.5" if name != "PolynomialDecay" else ""
    spec = (f"optimizer: {{Adam: {{learning_rate: {{{name}: "
            f"{{initial_learning_rate: 0.1, decay_steps: auto{rate}}}}}}}}}")
    schedule = schedule_of(build_optimizer(recipe(spec), total_steps=30))
    assert type(schedule).__name__ == name and schedule.decay_steps == 30


def test_piecewise_constant_decay_by_step():
    spec = "optimizer: {SGD: {learning_rate: {PiecewiseConstantDecay: {boundaries: [10, 20], values: [1, 0.1, 0.01]}}}}"
    schedule = schedule_of(build_optimizer(recipe(spec)))
    assert [float(schedule(s)) for s in (5, 15, 25)] == pytest.approx([1.0, 0.1, 0.01])


# -- class weights --------------------------------------------------------------------------------


def test_balanced_weights_are_sklearns_on_an_imbalanced_split():
    from sklearn.utils.class_weight import compute_class_weight

    counts = np.array([500, 60, 7, 33])
    labels = np.repeat(np.arange(4), counts)
    expected = compute_class_weight("balanced", classes=np.arange(4), y=labels)
    np.testing.assert_allclose(balanced_weights(counts), expected, rtol=1e-12)
    assert balanced_weights(counts)[2] == pytest.approx(600 / (4 * 7))  # the rare class counts most
    assert balanced_weights([5, 0, 5]).tolist() == [2 / 3 * 1.0, 1.0, 2 / 3 * 1.0]  # an absent class: 1.0


def test_class_weight_by_index_or_name_fills_the_rest_with_one():
    r = recipe("class_weight: {0: 5.0, '3': 0.25}")
    model = build(r).model
    names = [str(i) for i in range(10)]
    weights = class_weights(model, r, class_names=names)
    assert weights == {**dict.fromkeys(range(10), 1.0), 0: 5.0, 3: 0.25}


@pytest.mark.parametrize(("spec", "phrase"), [
    ("{12: 1.0}", "there is no class 12: the classes are 0..9"),
    ("{'seven': 1.0}", "unknown class 'seven'"),
    ("{3: 2.0, '3': 1.0}", "class 3 is given twice"),
    ("{3: -1.0}", "a class weight is a number, 0 or more"),
])
def test_bad_class_weights_are_located(spec, phrase):
    r = recipe(f"class_weight: {spec}")
    with pytest.raises(RecipeError) as excinfo:
        class_weights(build(r).model, r, class_names=[str(i) for i in range(10)])
    assert problem_of(excinfo).startswith("recipe.yaml:9:")
    assert "train.class_weight" in problem_of(excinfo) and phrase in problem_of(excinfo)


def test_class_weight_is_refused_for_several_outputs():
    r = recipe("class_weight: balanced", model=TWO_OUTPUTS)
    with pytest.raises(RecipeError) as excinfo:
        check_training(build(r).model, r)
    assert "Keras applies class_weight to a model with one output; this one has 2 (label, early)" in \
        problem_of(excinfo)


# -- mixed precision ------------------------------------------------------------------------------


def test_auto_precision_is_float16_only_on_gpus_that_gain_from_it():
    assert resolve_policy("auto", []) == "float32"  # CPU
    assert resolve_policy("auto", [(7, 0)]) == "mixed_float16"  # Volta and later
    assert resolve_policy("auto", [(8, 6), (6, 1)]) == "float32"  # one Pascal card slows the other
    assert resolve_policy("auto") == "float32"  # this machine has no GPU
    assert [resolve_policy(s) for s in ("off", "float16", "bfloat16")] == \
        ["float32", "mixed_float16", "mixed_bfloat16"]


def test_policy_scope_restores_the_previous_policy_even_on_error():
    before = keras.config.dtype_policy().name
    with pytest.raises(RuntimeError), policy_scope("mixed_bfloat16"):
        assert keras.config.dtype_policy().name == "mixed_bfloat16"
        raise RuntimeError("boom")
    assert keras.config.dtype_policy().name == before


@pytest.mark.parametrize("precision", ["float16", "bfloat16"])
def test_mixed_model_computes_in_half_and_outputs_float32(precision):
    built = build(recipe(f"mixed_precision: {precision}"))
    model = built.model
    policy = f"mixed_{precision}"
    assert built.policy == policy
    assert [layer.dtype_policy.name for layer in model.layers] == [policy, policy, "float32"]
    assert model.layers[0].compute_dtype == precision and model.layers[0].variable_dtype == "float32"
    assert model.outputs[0].dtype == "float32"
    assert model(np.zeros((2, 8, 8, 1), "float32")).dtype == "float32"
    assert keras.config.dtype_policy().name == "float32"  # nothing leaks into the next model
    assert build(recipe()).model.layers[0].dtype_policy.name == "float32"


def test_every_output_layer_is_float32_unless_the_recipe_says_otherwise():
    model = build(recipe("mixed_precision: float16", model=TWO_OUTPUTS.replace(
        "early: {Dense: {units: 10, activation: softmax}", "early: {Dense: {units: 10, activation: softmax, "
        "dtype: mixed_float16}"))).model
    policies = {layer.name: layer.dtype_policy.name for layer in model.layers[1:]}  # after the input
    assert policies == {"flat": "mixed_float16", "label": "float32", "early": "mixed_float16"}


def test_float16_training_gets_keras_loss_scaling_and_bfloat16_does_not():
    for precision, wrapped in (("float16", True), ("bfloat16", False), ("off", False)):
        r = recipe(f"mixed_precision: {precision}")
        model = build(r).model
        compile_model(model, r)
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer) is wrapped, precision


def test_unquoted_off_reads_as_off():
    assert recipe("mixed_precision: off").train.mixed_precision == "off"  # YAML 1.1 reads it as false


# -- compile options ------------------------------------------------------------------------------


def test_jit_compile_and_steps_per_execution_reach_the_compiled_model():
    r = recipe("jit_compile: true\nsteps_per_execution: 4")
    model = build(r).model
    compile_model(model, r)
    assert model.jit_compile is True and model.steps_per_execution == 4
    default = recipe()
    model = build(default).model
    compile_model(model, default)
    assert model.jit_compile is False and model.steps_per_execution == 1  # auto: XLA is off on a CPU


def test_jit_compile_true_names_the_layers_xla_cannot_compile():
    zoom = CHAIN.replace("- Flatten", "- RandomZoom: {height_factor: 0.1}\n    - Flatten")
    r = recipe("jit_compile: true", model=zoom)
    with pytest.raises(RecipeError) as excinfo:
        check_training(build(r).model, r)
    assert "train.jit_compile: XLA cannot compile random_zoom (RandomZoom)" in problem_of(excinfo)


def test_jit_compile_true_and_deterministic_ops_are_refused_together():
    r = recipe("jit_compile: true\ndeterministic: true")
    with pytest.raises(RecipeError) as excinfo:
        check_training(build(r).model, r)
    assert "train.jit_compile: jit_compile: true and train.deterministic: true do not go together" in problem_of(
        excinfo)


# -- the summary ----------------------------------------------------------------------------------


def test_summary_shows_the_last_epoch_best_epoch_test_time_and_run():
    metrics = {
        "epochs": 4, "train": {"accuracy": 0.9, "loss": 0.3}, "validation": {"accuracy": 0.8, "loss": 0.5},
        "test": {"accuracy": 0.85, "loss": 0.4}, "best": {"monitor": "val_loss", "value": 0.45, "epoch": 2},
        "train_seconds": 3.21, "images_per_sec": 4321.0,
        "training": {"epochs_planned": 10, "stopped_by": "EarlyStopping", "learning_rate": 0.0005,
                     "mixed_precision": "mixed_bfloat16", "jit_compile": False, "steps_per_execution": 2},
    }
    lines = format_summary(metrics, "runs/t/1").splitlines()
    assert lines[0].split() == ["split", "loss", "accuracy"]  # losses first
    assert lines[2].split() == ["train", "0.3000", "0.9000"]
    assert lines[4].split() == ["test", "0.4000", "0.8500"]
    assert "last epoch: 4 of 10, stopped early by EarlyStopping (train and validation above)" in lines
    assert "best epoch: 2, val_loss 0.4500 (best.keras)" in lines
    assert "time: 3.2 s, 4,321 images/s" in lines
    assert "learning rate: 0.0005 at the end" in lines
    assert "compute: dtype policy mixed_bfloat16, 2 steps per execution" in lines
    assert lines[-1] == "run: runs/t/1"


# -- the docs -------------------------------------------------------------------------------------

DOCS = Path(__file__).parents[2] / "docs" / "recipe.md"
TRAINING_SECTION = DOCS.read_text().split("\n## Training\n", 1)[1].split("\n## ", 1)[0]
TRAIN_EXAMPLES = [block for block in re.findall(r"```yaml\n(.*?)```", TRAINING_SECTION, re.S)
                  if block.startswith("train:")]


@pytest.mark.parametrize("example", TRAIN_EXAMPLES, ids=[f"example{i}" for i in range(len(TRAIN_EXAMPLES))])
def test_train_examples_in_the_docs_pass_check(example):
    r = load_recipe_text(textwrap.dedent(CHAIN).lstrip() + example, "docs/recipe.md")
    check_training(build(r).model, r)


def test_the_docs_have_a_train_example():
    assert TRAIN_EXAMPLES
