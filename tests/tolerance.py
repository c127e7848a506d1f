"""How close two computations of one model must be, by the dtype the model computes in, never by the CPU.

Keras and an export, a batch and a batch of one, one machine and another: each computes the same model
with other kernels, summation orders and (in half precision) other places of rounding. On a CPU with
AVX512-FP16 and AMX, oneDNN rounds a float16 model's Keras graph and its SavedModel differently (max
|difference| 1.9e-4) where another CPU agrees to 1e-5. So every comparison of model outputs in the suite
takes its tolerance from here, by compute dtype: the figures docs/export.md promises for an export
(``|a - b| <= atol + rtol x |b|``), a few units in the last place of the dtype for outputs of order one
(float16 keeps 11 bits, epsilon 9.8e-4; bfloat16 8 bits, epsilon 7.8e-3). They are written here, not read
from cnnctl, so that a change of cnnctl's own figures shows in a test.
"""

from __future__ import annotations

import numpy as np

TOLERANCE = {
    "float32": {"atol": 1e-5, "rtol": 1e-4},  # the same float32 arithmetic in another order
    "float16": {"atol": 5e-3, "rtol": 1e-2},  # ~5 epsilon: activations rounded to float16 between layers
    "bfloat16": {"atol": 4e-2, "rtol": 5e-2},  # ~5 epsilon of bfloat16
}


def dtype_of(policy: str | None) -> str:
    """The compute dtype of a Keras dtype policy: ``mixed_float16`` -> float16; None or ``float32`` -> float32."""
    return (policy or "float32").removeprefix("mixed_")


def assert_close(got, want, dtype: str = "float32", err_msg: str = "") -> None:
    """``got`` matches ``want`` elementwise within the tolerance of ``dtype`` (a dtype or a mixed policy)."""
    np.testing.assert_allclose(np.asarray(got, "float64"), np.asarray(want, "float64"), err_msg=err_msg,
                               **TOLERANCE[dtype_of(dtype)])


def most_diff(dtype: str = "float32", scale: float = 1.0) -> float:
    """The largest |difference| the tolerance of ``dtype`` allows for values of magnitude up to ``scale`` (1 for
    probabilities): what an export record's ``max_abs_diff`` may reach."""
    tolerance = TOLERANCE[dtype_of(dtype)]
    return tolerance["atol"] + tolerance["rtol"] * scale
