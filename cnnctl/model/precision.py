"""``train.mixed_precision`` -> a Keras dtype policy, applied while the model is built.

Keras reads the global dtype policy when a layer (or the model) is constructed
and stores it in the layer, so cnnctl sets the policy only for the time it takes
to build the model and then puts the previous one back: nothing leaks into the
next run, test or model (``policy_scope``). The layer that produces each model
output is given ``dtype="float32"`` (unless the recipe sets its dtype), so the
softmax and the loss are computed in float32, as TensorFlow's mixed-precision
guide recommends; its weights are float32 in every policy.

``auto`` follows the same guide: float16 pays on NVIDIA GPUs of compute capability
7.0 or more (Volta, Turing, Ampere and later, which have Tensor Cores); older GPUs
and CPUs run it slower than float32. bfloat16 pays on Ampere (8.0) and later and
on TPUs; Keras needs no loss scaling for it. On a CPU both are slower.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import keras

# train.mixed_precision -> Keras dtype policy name
POLICIES = {"off": "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}
FLOAT16_MIN_COMPUTE_CAPABILITY = (7, 0)


def resolve_policy(setting: str, gpu_capabilities: Sequence[tuple[int, int]] | None = None) -> str:
    """The Keras dtype policy name for ``setting`` (auto, off, float16, bfloat16).

    ``auto`` is ``mixed_float16`` when every visible GPU has compute capability
    7.0 or more, ``float32`` otherwise (CPUs, older GPUs). ``gpu_capabilities``
    defaults to the GPUs TensorFlow sees.
    """
    if setting != "auto":
        return POLICIES[setting]
    if gpu_capabilities is None:
        gpu_capabilities = visible_gpu_capabilities()
    if gpu_capabilities and all(tuple(cc) >= FLOAT16_MIN_COMPUTE_CAPABILITY for cc in gpu_capabilities):
        return "mixed_float16"
    return "float32"


def visible_gpu_capabilities() -> list[tuple[int, int]]:
    """The CUDA compute capability of each GPU TensorFlow sees ((0, 0) where it cannot tell)."""
    import tensorflow as tf

    out = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        out.append(tuple(details.get("compute_capability") or (0, 0)))
    return out


@contextmanager
def policy_scope(policy: str) -> Iterator[None]:
    """Make ``policy`` Keras's global dtype policy inside the block; restore the previous one after."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def is_mixed(policy: str) -> bool:
    return policy.startswith("mixed_")
