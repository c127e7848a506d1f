"""The hparams dashboard: a run's recipe as flat ``section.key`` values, and the metrics it logs.

Every run under one runs folder gets the same names, so the HParams dashboard
shows them as one table, a row per run.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import keras

from cnnctl.data.pipeline import Datasets
from cnnctl.recipe import Recipe
from cnnctl.recipe.calls import split_spec
from cnnctl.run import Run


def _text(value: Any) -> str:
    """A recipe value as canonical JSON, whatever YAML gave: keys as text and sorted (``repr`` when two keys
    would read the same, as ``1`` and ``"1"`` do), dates, bytes and the like as ``str``."""
    def plain(v: Any) -> Any:
        if isinstance(v, dict):
            keys = [k if isinstance(k, str) else str(k) for k in v]
            if len(set(keys)) < len(keys):
                keys = [repr(k) for k in v]
            return {k: plain(x) for k, x in zip(keys, v.values(), strict=True)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v

    return json.dumps(plain(value), sort_keys=True, default=str)


def hparam_values(recipe: Recipe, run: Run, model: keras.Model, data: Datasets) -> dict[str, Any]:
    """The recipe's values as flat ``section.key`` hparams: the same names for every run, so that runs under
    one runs folder share one table in the HParams dashboard. Values are numbers, booleans or strings, for any
    value the recipe's schema accepts (mappings and arguments as canonical JSON)."""
    train, d = recipe.train, recipe.data
    optimizer, args = split_spec(train.optimizer)
    rate = args.get("learning_rate")
    schedule = "none"
    if isinstance(rate, dict):  # {CosineDecay: {initial_learning_rate: ...}}
        schedule, schedule_args = split_spec(rate)
        rate = schedule_args.get("warmup_target") or schedule_args.get("initial_learning_rate")
    if not isinstance(rate, (int, float)):
        inner = getattr(model.optimizer, "inner_optimizer", model.optimizer)
        rate = float(keras.ops.convert_to_numpy(inner.learning_rate))
    loss = train.loss if isinstance(train.loss, str) else _text(train.loss)
    model_json = _text(recipe.model.model_dump(mode="json"))
    return {
        "name": recipe.name,
        "run": f"{run.path.parent.name}/{run.path.name}",
        "seed": recipe.seed,
        "data.source": d.source,
        "data.batch_size": d.batch_size,
        "data.augment": ", ".join(data.augment) or "none",
        "data.normalize": data.normalization.get("normalize", "none"),
        "data.train_examples": int(data.sizes["train"]),
        "model.params": int(model.count_params()),
        "model.layers": len(model.layers),
        "model.digest": hashlib.sha256(model_json.encode()).hexdigest()[:10],  # tells architectures apart
        "train.epochs": train.epochs,
        "train.optimizer": optimizer,
        "train.optimizer_args": _text({k: v for k, v in args.items() if k != "learning_rate"}),
        "train.learning_rate": float(f"{float(rate):.7g}"),  # float32 -> the written value
        "train.lr_schedule": schedule,
        "train.loss": loss,
        "train.mixed_precision": str(train.mixed_precision),
        "train.jit_compile": str(train.jit_compile),
        "train.steps_per_execution": train.steps_per_execution,
        "train.class_weight": train.class_weight if isinstance(train.class_weight, str) else
        ("none" if train.class_weight is None else _text(train.class_weight)),
        "train.callbacks": ", ".join(split_spec(c)[0] for c in train.callbacks) or "none",
    }


def write_hparams(recipe: Recipe, run: Run, model: keras.Model, data: Datasets) -> list[str]:
    """This run's values (the session start) to the default summary writer; returns their names. The trial id
    is the run (name/time), so each run is its own row."""
    from tensorboard.plugins.hparams import api as hp

    values = hparam_values(recipe, run, model, data)
    hp.hparams(values, trial_id=values["run"], start_time_secs=time.time())
    return list(values)


def hparam_metrics(model: keras.Model, logs: dict) -> list[tuple[str, str]]:
    """(group, tag) of each metric the model logs, the loss included, as Keras's TensorBoard writes them: the
    model's compiled metric names (``loss``, ``accuracy``; ``<output>_loss``, ``<output>_accuracy``, ... for
    several outputs), in ``validation`` when an epoch's ``logs`` have ``val_<name>``, and in ``train``."""
    names = list(model.get_metrics_result())  # built by the first epoch's end
    return [(group, f"epoch_{name}") for group in ("validation", "train") for name in names
            if group == "train" or f"val_{name}" in logs]


def write_experiment(hparams: list[str], metrics: list[tuple[str, str]]) -> None:
    """The experiment: the hparam names and the run's metrics as (group, tag), to the default summary writer."""
    from tensorboard.plugins.hparams import api as hp

    hp.hparams_config(hparams=[hp.HParam(name) for name in hparams],
                      metrics=[hp.Metric(tag, group=group, display_name=f"{group} {tag.removeprefix('epoch_')}")
                               for group, tag in metrics],
                      time_created_secs=0)  # identical in runs alike: TensorBoard shows one run's experiment
