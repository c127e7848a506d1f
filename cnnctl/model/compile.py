"""``model.compile`` with the recipe's optimizer, losses, metrics, loss weights, XLA and steps_per_execution.

Training compiles the model it fits, and ``cnnctl eval`` the model it loads (its
loss and metrics are the recipe's): both call ``compile_model``.
"""

from __future__ import annotations

import keras

from cnnctl.errors import RecipeError
from cnnctl.model.objects import build_loss, build_metrics, build_optimizer
from cnnctl.recipe import Recipe


def compile_model(model: keras.Model, recipe: Recipe, *, total_steps: int | None = None) -> None:
    """``model.compile`` with the recipe's optimizer, losses, metrics, jit_compile and steps_per_execution.

    Everything by keyword (Keras 3). Per-output settings (``loss: {exit1: ..., final: ...}``)
    become lists in the model's output order; one loss or one metric list applies to every
    output. ``total_steps`` (the run's optimizer steps) resolves a schedule's ``decay_steps:
    auto``. A model built under mixed_float16 gets Keras's LossScaleOptimizer explicitly, so
    that a saved model reloads with the same optimizer (Keras would wrap it only at compile).
    """
    outputs = recipe.graph.output_names
    several = len(outputs) > 1
    loss_weights = recipe.train.loss_weights
    if isinstance(loss_weights, dict):
        loss_weights = [loss_weights.get(name, 1.0) for name in outputs]
    metrics = build_metrics(recipe)
    if several and not isinstance(recipe.train.metrics, dict):
        metrics = [list(metrics) for _ in outputs]
    optimizer = build_optimizer(recipe, total_steps)
    if model.dtype_policy.name == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    check_jit_compile(model, recipe)
    model.compile(optimizer=optimizer, loss=build_loss(recipe), loss_weights=loss_weights, metrics=metrics,
                  jit_compile=recipe.train.jit_compile, steps_per_execution=recipe.train.steps_per_execution)


def check_jit_compile(model: keras.Model, recipe: Recipe) -> None:
    """``jit_compile: true`` with a layer XLA cannot compile: say which, rather than Keras's silent fallback."""
    if recipe.train.jit_compile is not True:
        return
    if recipe.train.deterministic:  # Keras would turn XLA off without a word
        raise RecipeError(recipe.problem(("train", "jit_compile"), "jit_compile: true and train.deterministic: "
                                         "true do not go together: Keras turns XLA off under TensorFlow's "
                                         "deterministic ops (not every XLA kernel has a deterministic form); "
                                         "set one of them to false"))
    refusing = sorted({f"{layer.name} ({type(layer).__name__})" for layer in model._flatten_layers(include_self=False)
                       if not layer.supports_jit})
    if refusing:
        raise RecipeError(recipe.problem(("train", "jit_compile"), f"XLA cannot compile {', '.join(refusing)}; "
                                         "set jit_compile: auto or false"))
