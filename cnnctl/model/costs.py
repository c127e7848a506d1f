"""What a layer call costs, and its sliding window: multiply-accumulates, padding (receptive fields: ``fields``).

Conventions (as in most papers' tables):

- MACs count the multiply-accumulates of a layer's weights on one example:
  convolutions (all kinds), dense, recurrent and cnnctl's own layers. Bias adds,
  normalization, activations, pooling and merges count 0. FLOPs = 2 x MACs.
  A layer with weights this module does not know gets ``None`` (shown as ``?``),
  and totals say how many layers they leave out.
- TensorFlow's SAME padding puts the odd pixel at the bottom/right; frameworks
  that pad symmetrically (ONNX, PyTorch, some TFLite paths) then disagree.
"""

from __future__ import annotations

import math

import keras

_CONV = {"Conv1D", "Conv2D", "Conv3D"}
TRANSPOSED = {"Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"}
_DEPTHWISE = {"DepthwiseConv1D", "DepthwiseConv2D"}
_SEPARABLE = {"SeparableConv1D", "SeparableConv2D"}
_RNN_GATES = {"SimpleRNN": 1, "GRU": 3, "LSTM": 4}
_POOLS = {f"{kind}Pooling{d}D" for kind in ("Max", "Average") for d in (1, 2, 3)}


def macs(layer: keras.layers.Layer, inputs: list[tuple], output: tuple) -> int | None:
    """Multiply-accumulates of one call on one example; shapes include the batch dimension."""
    name = type(layer).__name__
    shape = inputs[0]
    if name in _CONV:
        cin = shape[-1]
        return _prod(output[1:-1]) * layer.filters * _prod(layer.kernel_size) * cin // layer.groups
    if name in TRANSPOSED:
        return _prod(shape[1:-1]) * shape[-1] * _prod(layer.kernel_size) * layer.filters
    if name in _DEPTHWISE:
        return _prod(output[1:-1]) * shape[-1] * layer.depth_multiplier * _prod(layer.kernel_size)
    if name in _SEPARABLE:
        depthwise = shape[-1] * layer.depth_multiplier
        return _prod(output[1:-1]) * depthwise * (_prod(layer.kernel_size) + layer.filters)
    if name == "Dense":
        return _prod(shape[1:]) * layer.units
    if name in _RNN_GATES:
        steps, features = shape[1], shape[-1]
        units = layer.units
        return None if steps is None else steps * _RNN_GATES[name] * (features + units) * units
    if name == "Bidirectional":
        one = macs(layer.forward_layer, inputs, output)
        return None if one is None else 2 * one
    if name == "TimeDistributed":
        inner_in = (shape[0], *shape[2:])
        inner_out = (output[0], *output[2:])
        one = macs(layer.layer, [inner_in], inner_out)
        return None if one is None or shape[1] is None else shape[1] * one
    own = getattr(layer, "macs", None)  # cnnctl's own layers say what they cost
    if callable(own):
        return own([tuple(s) for s in inputs])
    return 0 if not layer.weights or name.endswith("Normalization") or name == "Embedding" else None


def asymmetric_padding(layer: keras.layers.Layer, inputs: list[tuple]) -> list[tuple[int, int, int, int, int]]:
    """For SAME padding: ``(size, kernel, stride, before, after)`` of each dimension padded unevenly."""
    window = sliding_window(layer)
    if window is None or getattr(layer, "padding", None) != "same" or type(layer).__name__ in TRANSPOSED:
        return []
    uneven = []
    for size, k, s, d in zip(inputs[0][1:-1], *window, strict=True):
        if size is None:
            continue
        span = d * (k - 1) + 1
        total = max((math.ceil(size / s) - 1) * s + span - size, 0)
        if total % 2:
            uneven.append((size, span, s, total // 2, total - total // 2))
    return uneven


def sliding_window(layer: keras.layers.Layer) -> tuple[tuple, tuple, tuple] | None:
    """(kernel, strides, dilation) of a sliding-window layer, else None."""
    name = type(layer).__name__
    if name in _CONV | TRANSPOSED | _DEPTHWISE | _SEPARABLE:
        rank = len(layer.kernel_size)
        return tuple(layer.kernel_size), _tuple(layer.strides, rank), _tuple(layer.dilation_rate, rank)
    if name in _POOLS:
        rank = int(name[-2])  # MaxPooling2D -> 2
        pool = _tuple(layer.pool_size, rank)
        strides = _tuple(layer.strides if layer.strides is not None else layer.pool_size, rank)
        return pool, strides, (1,) * rank
    return None


def _tuple(value, rank: int) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * rank


def _prod(values) -> int:
    return math.prod(int(v) for v in values)
