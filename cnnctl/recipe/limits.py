"""Sizes a recipe may ask for: checked before anything is allocated, so a typo never becomes a hang or an
out-of-memory kill.

Fixed bounds (the same on every machine, far above any real model):

- one input example has at most ``MAX_EXAMPLE_VALUES`` values (model inputs, synthetic data, image sizes);
- a block is repeated at most ``MAX_REPEAT`` times, and the model expands to at most ``MAX_CALLS`` layer calls
  (``cnnctl.recipe.graph``);
- synthetic data has at most ``MAX_SYNTHETIC_EXAMPLES`` examples; an RNN unrolls at most ``MAX_UNROLL`` steps.

Bounds from this machine's memory (``memory_bytes``): a batch of inputs, and the model's float32 weights
(``cnnctl.model.build``), may use at most half of it. Pure Python, no TensorFlow.
"""

from __future__ import annotations

import math
import os
from functools import cache

from cnnctl.errors import Problem, RecipeError

MAX_EXAMPLE_VALUES = 2**28  # 268,435,456 values: 1 GiB as float32 (a 9,459 x 9,459 RGB image)
MAX_REPEAT = 1_000
MAX_CALLS = 10_000
MAX_SYNTHETIC_EXAMPLES = 10_000_000
MAX_UNROLL = 1_000  # time steps of an RNN with unroll: true (cnnctl.model.build)
CHANNELS = {"grayscale": 1, "rgb": 3, "rgba": 4}


@cache
def memory_bytes() -> int:
    """This machine's physical memory, or the container's memory limit (cgroup) when that is lower."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows): assume a modest machine
        total = 8 * 2**30
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(limit_file, encoding="ascii") as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < total:
            total = int(text)
    return total


def size_text(nbytes: float) -> str:
    """``3.2 GiB``."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if nbytes < 1024 or unit == "PiB":
            return f"{nbytes:,.0f} {unit}" if unit == "bytes" else f"{nbytes:,.1f} {unit}"
        nbytes /= 1024
    raise AssertionError("unreachable")


def check_limits(recipe) -> None:
    """Every size in the recipe that would ask for more than a machine has; raises ``RecipeError``."""
    problems: list[Problem] = []
    model, data = recipe.model, recipe.data
    inputs = ({("model", "input"): model.input} if model.input is not None else
              {("model", "inputs", name): (spec if isinstance(spec, list) else spec.shape)
               for name, spec in (model.inputs or {}).items()})
    largest = 0
    for path, shape in inputs.items():
        values = math.prod(d for d in shape if d is not None)
        largest = max(largest, values)
        if values > MAX_EXAMPLE_VALUES:
            problems.append(recipe.problem(path, _too_many(shape, values)))
    given = data.model_fields_set
    if data.shape is not None and math.prod(data.shape) > MAX_EXAMPLE_VALUES:
        problems.append(recipe.problem(("data", "shape"), _too_many(data.shape, math.prod(data.shape))))
    elif data.shape is not None and data.classes is not None and data.classes * math.prod(data.shape) > \
            MAX_EXAMPLE_VALUES:
        problems.append(recipe.problem(("data", "classes"), f"{data.classes:,} classes of {data.shape} examples: "
                                       f"synthetic data keeps one pattern per class, {_count(data.classes, data.shape)}"
                                       f"; cnnctl takes at most {MAX_EXAMPLE_VALUES:,} values"))
    if "count" in given and data.count > MAX_SYNTHETIC_EXAMPLES:
        problems.append(recipe.problem(("data", "count"), f"{data.count:,} synthetic examples; cnnctl generates at "
                                       f"most {MAX_SYNTHETIC_EXAMPLES:,} (train for more epochs instead)"))
    if data.reshape is not None and math.prod(data.reshape) > MAX_EXAMPLE_VALUES:
        problems.append(recipe.problem(("data", "reshape"), _too_many(data.reshape, math.prod(data.reshape))))
    for name, feature in (data.features or {}).items():
        if math.prod(feature.shape) > MAX_EXAMPLE_VALUES:
            problems.append(recipe.problem(("data", "features", name, "shape"),
                                           _too_many(feature.shape, math.prod(feature.shape))))
    if "image_size" in given:
        image = [*data.image_size, CHANNELS[data.color_mode]]
        if math.prod(image) > MAX_EXAMPLE_VALUES:
            problems.append(recipe.problem(("data", "image_size"), _too_many(image, math.prod(image))))
    batch_bytes = data.batch_size * largest * 4
    if not problems and batch_bytes > memory_bytes() // 2:
        problems.append(recipe.problem(("data", "batch_size"), (
            f"a batch of {data.batch_size:,} inputs of {largest:,} values is {size_text(batch_bytes)} as float32, "
            f"more than half of this machine's {size_text(memory_bytes())} of memory: make the batch smaller")))
    if problems:
        raise RecipeError(problems)


def _count(n: int, shape: list) -> str:
    return f"{n * math.prod(shape):,} values ({size_text(4 * n * math.prod(shape))} as float32)"


def _too_many(shape: list, values: int) -> str:
    return (f"one example of shape {list(shape)} has {values:,} values ({size_text(4 * values)} as float32); "
            f"cnnctl takes at most {MAX_EXAMPLE_VALUES:,} ({size_text(4 * MAX_EXAMPLE_VALUES)}) per example: "
            "is a dimension mistyped?")
