"""Short real training runs (digits, in-process) that show each training option doing its job.

The learning rate follows its schedule step by step, EarlyStopping ends a run,
ReduceLROnPlateau lowers the rate, Keras weights the loss by class, mixed precision
trains and reloads, XLA and steps_per_execution reach fit. Each run takes a second or two.
"""

from __future__ import annotations

import csv
import json
import math
import textwrap
import warnings

import keras
import numpy as np
import pytest

from cnnctl import train
from cnnctl.recipe import load_recipe_text
from cnnctl.training.checkpoint import latest_checkpoint
from cnnctl.training.preflight import prepare
from tests.conftest import datasets_of
from tests.tolerance import assert_close

DENSE = """
name: t
data: {batch_size: 128}
model:
  input: [8, 8, 1]
  layers:
    - Flatten
    - Dense: {units: 32, activation: relu}
    - Dense: {units: 10, activation: softmax}
log: {tensorboard: false}
"""
TRAIN_EXAMPLES = 1257  # digits, 10 % validation and 20 % test held out (stratified)


def recipe(train: str, model: str = DENSE):
    text = textwrap.dedent(model).lstrip() + "train:\n" + textwrap.indent(textwrap.dedent(train), "  ")
    return load_recipe_text(text, "recipe.yaml")


def history(run) -> list[dict]:
    with open(run / "history.csv") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def cosine_with_warmup(step: float, initial: float, target: float, warmup: int, decay: int) -> float:
    """Keras's CosineDecay with warmup (alpha 0), written from its documented formula."""
    if step < warmup:
        return initial + (target - initial) * step / warmup
    done = min(step - warmup, decay) / decay
    return target * 0.5 * (1 + math.cos(math.pi * done))


def test_learning_rate_follows_warmup_then_cosine_through_a_run(tmp_path):
    result = train(recipe("""
        epochs: 6
        optimizer: {Adam: {learning_rate: {CosineDecay: {initial_learning_rate: 0.0, warmup_target: 1.0e-2,
                                                         warmup_steps: 20, decay_steps: auto}}}}
        """), runs_dir=tmp_path, progress=False)
    per_epoch = math.ceil(TRAIN_EXAMPLES / 128)  # 10
    assert result.metrics["training"]["steps_per_epoch"] == per_epoch
    assert result.metrics["training"]["steps"] == 6 * per_epoch  # 60 optimizer steps were taken
    rows = history(result.run)
    measured = [row["learning_rate"] for row in rows]
    expected = [cosine_with_warmup(per_epoch * e, 0.0, 1e-2, 20, 6 * per_epoch - 20) for e in range(1, 7)]
    # after 10 steps: half way up the warmup; 20: the target; then down the cosine to 0 at step 60
    assert expected[:2] == pytest.approx([5e-3, 1e-2])
    assert measured == pytest.approx(expected, rel=1e-6, abs=1e-9)
    assert measured[-1] == pytest.approx(0.0, abs=1e-9)  # decay_steps: auto ends the decay with the run
    assert rows[-1]["loss"] < rows[0]["loss"]  # and it trained

    optimizer = keras.saving.load_model(result.run / "model.keras").optimizer  # saved with the model
    assert int(optimizer.iterations) == 60
    assert float(optimizer.learning_rate) == pytest.approx(0.0, abs=1e-9)


def test_early_stopping_ends_the_run_before_train_epochs(tmp_path):
    # min_delta 10: no epoch after the first counts as better, so patience 1 stops after epoch 2
    result = train(recipe("""
        epochs: 10
        callbacks: [{EarlyStopping: {monitor: val_loss, patience: 1, min_delta: 10.0}}]
        """), runs_dir=tmp_path, progress=False)
    assert [row["epoch"] for row in history(result.run)] == [1, 2]
    assert result.metrics["epochs"] == 2
    assert result.metrics["training"]["stopped_by"] == "EarlyStopping"
    assert result.metrics["training"]["epochs_planned"] == 10
    assert latest_checkpoint(result.run.path).epoch == 2 and latest_checkpoint(result.run.path).state["stopped_early"]


def test_reduce_lr_on_plateau_lowers_the_learning_rate(tmp_path):
    result = train(recipe("""
        epochs: 4
        optimizer: {Adam: {learning_rate: 1.0e-3}}
        callbacks:
          - ReduceLROnPlateau: {monitor: val_loss, factor: 0.5, patience: 1, min_delta: 10.0}
          - CSVLogger: {filename: extra/keras_log.csv}
        """), runs_dir=tmp_path, progress=False)
    # the rate each epoch ended with, before the callback acted: halved after every epoch from the second
    assert [row["learning_rate"] for row in history(result.run)] == pytest.approx([1e-3, 1e-3, 5e-4, 2.5e-4])
    assert result.metrics["training"]["learning_rate"] == pytest.approx(2.5e-4)
    optimizer = keras.saving.load_model(result.run / "model.keras").optimizer
    assert float(optimizer.learning_rate) == pytest.approx(1.25e-4)  # lowered once more after epoch 4
    with open(result.run / "extra" / "keras_log.csv") as f:  # CSVLogger wrote inside the run
        assert len(list(csv.DictReader(f))) == 4


def test_keras_weights_the_loss_by_class(tmp_path):
    # one step over the whole training split with a learning rate of 0: the logged loss is the
    # weighted loss of the saved model, which we compute by hand
    weights = {0: 5.0, 3: 0.25, 7: 2.0}
    r = recipe("""
        epochs: 1
        optimizer: {SGD: {learning_rate: 0.0}}
        class_weight: {0: 5.0, '3': 0.25, 7: 2}
        monitor: null
        """, model=DENSE.replace("batch_size: 128", "batch_size: 2048"))
    result = train(r, runs_dir=tmp_path, progress=False)
    model = keras.saving.load_model(result.run / "model.keras")
    x, y = (np.concatenate(part) for part in zip(*datasets_of(r)["train"].as_numpy_iterator(), strict=True))
    assert len(y) == TRAIN_EXAMPLES
    probabilities = np.asarray(model(x, training=False), dtype="float64")
    crossentropy = -np.log(probabilities[np.arange(len(y)), y])
    w = np.array([weights.get(int(label), 1.0) for label in y])
    by_hand = float(np.sum(w * crossentropy) / len(y))  # Keras: sum of weighted losses / batch size
    assert result.metrics["train"]["loss"] == pytest.approx(by_hand, rel=1e-5)
    assert abs(by_hand - crossentropy.mean()) > 0.1  # the weights matter: the test can tell
    assert result.metrics["training"]["class_weight"]["3"] == 0.25


def test_balanced_class_weight_is_sklearns_on_the_training_split():
    from sklearn.utils.class_weight import compute_class_weight

    plan = prepare(recipe("class_weight: balanced"))
    labels = np.concatenate([y for _, y in plan.data["train"].as_numpy_iterator()])
    expected = compute_class_weight("balanced", classes=np.arange(10), y=labels)
    assert list(plan.class_weight) == list(range(10))
    np.testing.assert_allclose(list(plan.class_weight.values()), expected, rtol=1e-12)
    assert plan.data.class_counts["train"].tolist() == np.bincount(labels, minlength=10).tolist()


CNN = DENSE.replace("- Flatten", "- Conv2D: {filters: 8, kernel_size: 3, padding: same, activation: relu}\n"
                    "    - BatchNormalization: {}\n    - Flatten")


@pytest.mark.parametrize("precision", ["float16", "bfloat16"])
def test_mixed_precision_trains_on_cpu_and_its_models_reload(precision, tmp_path):
    import tensorflow as tf

    policy = f"mixed_{precision}"
    r = recipe(f"epochs: 2\nmixed_precision: {precision}", model=CNN + "export: [savedmodel]\n")
    result = train(r, runs_dir=tmp_path, progress=False)
    assert keras.config.dtype_policy().name == "float32"  # the run left the global policy as it was
    assert result.metrics["training"]["mixed_precision"] == policy
    assert all(np.isfinite(v) for v in result.metrics["train"].values())
    assert result.metrics["train"]["loss"] < 2.3  # below chance (ln 10): it learnt something
    assert result.metrics["test"]["accuracy"] > 0.3

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "Skipping variable loading for optimizer"
        model = keras.saving.load_model(result.run / "model.keras")
    assert [layer.dtype_policy.name for layer in model.layers] == [policy] * 4 + ["float32"]
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer) is (precision == "float16")
    x = next(datasets_of(r)["test"].as_numpy_iterator())[0]
    assert model(x, training=False).dtype == "float32"

    served = tf.saved_model.load(str(result.run / "export" / "savedmodel")).signatures["serving_default"]
    output = next(iter(served(tf.constant(x)).values()))
    assert output.dtype == tf.float32
    assert_close(output.numpy(), model(x, training=False), dtype=policy)  # half-precision rounding


@pytest.mark.parametrize("jit_compile", [False, pytest.param(True, marks=pytest.mark.slow)])  # XLA: ~20 s on CPU
def test_xla_and_steps_per_execution_reach_fit(jit_compile, tmp_path):
    r = recipe(f"epochs: 2\njit_compile: {str(jit_compile).lower()}\nsteps_per_execution: 4")
    result = train(r, runs_dir=tmp_path, progress=False)
    training = result.metrics["training"]
    assert training["jit_compile"] is jit_compile and training["steps_per_execution"] == 4
    assert training["steps"] == 2 * math.ceil(TRAIN_EXAMPLES / 128)  # every batch still takes a step
    rows = history(result.run)
    assert len(rows) == 2 and rows[1]["loss"] < rows[0]["loss"]
    model = keras.saving.load_model(result.run / "model.keras")
    assert model.jit_compile is jit_compile and model.steps_per_execution == 4  # saved with the compile config


DIVERGES = DENSE.replace("- Dense: {units: 10, activation: softmax}", "- Dense: {units: 10}")  # logits
NAN_TRAIN = """
epochs: 5
optimizer: {SGD: {learning_rate: 1.0e+30}}
loss: {SparseCategoricalCrossentropy: {from_logits: true}}
"""


@pytest.mark.parametrize("callbacks", ["[]", "[TerminateOnNaN]"])  # cnnctl stops on NaN with or without it
def test_a_diverging_run_stops_at_once_and_is_marked_failed(tmp_path, callbacks):
    from cnnctl.errors import CnnctlError

    with pytest.raises(CnnctlError) as excinfo:
        train(recipe(NAN_TRAIN + f"callbacks: {callbacks}", model=DIVERGES), runs_dir=tmp_path, progress=False)
    message = str(excinfo.value)
    assert excinfo.value.exit_code == 1
    assert message.startswith("training stopped: the training loss became nan at epoch 1, step ")
    step = int(message.split("step ", maxsplit=1)[1].split(";", maxsplit=1)[0])
    assert 1 <= step < 10  # at once: within the first epoch's 10 steps, not at its end
    assert "no epoch had finished" in message and "learning rate" in message and "data.normalize" in message
    (run,) = (tmp_path / "t").iterdir()
    assert not (run / ".lock").exists()  # the run directory is released
    assert json.loads((run / "metrics.json").read_text())["status"] == "failed"
    assert not (run / "model.keras").exists() and latest_checkpoint(run) is None  # nothing NaN was saved


def test_a_run_that_diverges_later_keeps_its_last_good_checkpoint(tmp_path):
    from cnnctl.errors import CnnctlError

    # a learning rate that trains for an epoch, then diverges once it is raised by the schedule's warmup
    diverging = NAN_TRAIN.replace("1.0e+30", "{ExponentialDecay: {initial_learning_rate: 1.0e-3, decay_steps: 10, "
                                             "decay_rate: 1.0e+30, staircase: true}}")
    with pytest.raises(CnnctlError) as excinfo:
        train(recipe(diverging, model=DIVERGES), runs_dir=tmp_path, progress=False)
    (run,) = (tmp_path / "t").iterdir()
    assert "at epoch 2, step" in str(excinfo.value) and "the last good checkpoint (epoch 1)" in str(excinfo.value)
    kept = latest_checkpoint(run)
    assert kept.epoch == 1 and kept.step == 0
    assert all(np.isfinite(v).all() for k, v in kept.arrays.items() if k.startswith("model/"))
    assert len(history(run)) == 1


def test_swap_ema_weights_best_keras_holds_the_weights_validation_measured(tmp_path):
    """With use_ema, validation measures the EMA weights; best.keras must be those, not the raw ones."""
    r = recipe("""
        epochs: 3
        optimizer: {Adam: {use_ema: true, ema_momentum: 0.9}}
        callbacks: [SwapEMAWeights]
        monitor: val_accuracy
    """)
    result = train(r, runs_dir=tmp_path, progress=False)
    best = result.metrics["best"]
    model = keras.saving.load_model(result.run / "best.keras")
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    measured = model.evaluate(datasets_of(r)["validation"], return_dict=True, verbose=0)["accuracy"]
    assert measured == pytest.approx(best["value"], abs=1e-6)


def poisoned(tmp_path, layers: str):
    """A recipe over digits saved as npz with a NaN in one pixel of one example; all of it trains."""
    from tests.datafiles import digits

    x, y = digits(400)
    x = x[..., None].astype("float32") / 255.0
    x[123, 4, 4, 0] = np.nan
    np.savez(tmp_path / "poisoned.npz", x=x, y=y)
    data = (f"data: {{source: npz, path: {tmp_path / 'poisoned.npz'}, batch_size: 16, "
            "split: {validation: 0, test: 0}}")  # every example trains: the poisoned one too
    model = f"name: t\n{data}\nmodel:\n  input: [8, 8, 1]\n  layers: {layers}\nlog: {{tensorboard: false}}\n"
    return recipe("epochs: 3\nmonitor: loss", model=model)


def test_a_nan_in_the_data_stops_the_run_at_the_step_that_read_it(tmp_path):
    """NaN injected into one training example: the loss is NaN from the step whose batch holds it."""
    from cnnctl.errors import CnnctlError

    r = poisoned(tmp_path, "[Flatten, {Dense: {units: 10, activation: softmax}}]")
    steps = [i + 1 for i, (x, _) in enumerate(datasets_of(r)["train"]) if np.isnan(x.numpy()).any()]
    assert len(steps) == 1 and steps[0] > 1  # one batch of the 25 holds it, not the first
    with pytest.raises(CnnctlError) as excinfo:
        train(r, runs_dir=tmp_path / "runs", progress=False)
    assert f"the training loss became nan at epoch 1, step {steps[0]};" in str(excinfo.value)


def test_nan_weights_under_a_finite_loss_are_never_saved(tmp_path):
    """Through a ReLU the NaN input leaves the loss finite (ReLU gives 0 for NaN) but makes the first layer's
    weights NaN: the run stops at the epoch's end, before its checkpoint, with the weights named."""
    from cnnctl.errors import CnnctlError

    r = poisoned(tmp_path, "[Flatten, {Dense: {units: 32, activation: relu}}, {Dense: {units: 10, "
                           "activation: softmax}}]")
    with pytest.raises(CnnctlError) as excinfo:
        train(r, runs_dir=tmp_path / "runs", progress=False)
    message = str(excinfo.value)
    assert "the weights became NaN or infinite by epoch 1 (" in message and "dense/kernel" in message
    assert "though the loss stayed finite" in message and "no epoch had finished" in message
    (run,) = (tmp_path / "runs" / "t").iterdir()
    assert latest_checkpoint(run) is None and not (run / "best.keras").exists()
