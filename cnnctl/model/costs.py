"""What a layer call costs and sees: multiply-accumulates, receptive field, padding.

Conventions (as in most papers' tables):

- MACs count the multiply-accumulates of a layer's weights on one example:
  convolutions (all kinds), dense, recurrent and cnnctl's own layers. Bias adds,
  normalization, activations, pooling and merges count 0. FLOPs = 2 x MACs.
  A layer with weights this module does not know gets ``None`` (shown as ``?``),
  and totals say how many layers they leave out.
- The receptive field of a spatial layer is the input window, in input pixels,
  that one of its outputs depends on; ``stride`` is how far apart two
  neighbouring outputs' windows are, in input pixels.
- TensorFlow's SAME padding puts the odd pixel at the bottom/right; frameworks
  that pad symmetrically (ONNX, PyTorch, some TFLite paths) then disagree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras

_CONV = {"Conv1D", "Conv2D", "Conv3D"}
_TRANSPOSED = {"Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"}
_DEPTHWISE = {"DepthwiseConv1D", "DepthwiseConv2D"}
_SEPARABLE = {"SeparableConv1D", "SeparableConv2D"}
_RNN_GATES = {"SimpleRNN": 1, "GRU": 3, "LSTM": 4}
_POOLS = {f"{kind}Pooling{d}D" for kind in ("Max", "Average") for d in (1, 2, 3)}
_UPSAMPLING = {"UpSampling1D", "UpSampling2D", "UpSampling3D"}


def macs(layer: keras.layers.Layer, inputs: list[tuple], output: tuple) -> int | None:
    """Multiply-accumulates of one call on one example; shapes include the batch dimension."""
    name = type(layer).__name__
    shape = inputs[0]
    if name in _CONV:
        cin = shape[-1]
        return _prod(output[1:-1]) * layer.filters * _prod(layer.kernel_size) * cin // layer.groups
    if name in _TRANSPOSED:
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


@dataclass(frozen=True)
class Field:
    """Receptive field of one output position, per spatial dimension, in input pixels."""

    size: tuple[float, ...]
    stride: tuple[float, ...]


def input_field(shape: tuple) -> Field | None:
    """An input with spatial dimensions (batch, *spatial, channels) sees one pixel."""
    spatial = len(shape) - 2
    return Field((1,) * spatial, (1,) * spatial) if spatial >= 1 else None


def receptive_field(layer: keras.layers.Layer, fields: list[Field | None], inputs: list[tuple],
                    output: tuple) -> Field | None:
    """The field after this call, from its inputs' fields; None once space is gone."""
    known = [f for f in fields if f is not None]
    if not known or any(len(s) != len(output) for s in inputs):
        return None  # a flatten, a global pooling, a dense on a flat vector...
    field = known[0]
    size = tuple(max(f.size[i] for f in known) for i in range(len(field.size)))
    window = _window(layer)
    if window is not None:
        kernel, strides, dilation = window
        if type(layer).__name__ in _TRANSPOSED:
            stride = tuple(j / s for j, s in zip(field.stride, strides, strict=True))
            return Field(tuple(r + (k - 1) * j for r, k, j in zip(size, kernel, stride, strict=True)), stride)
        grown = tuple(r + (d * (k - 1)) * j for r, k, d, j in zip(size, kernel, dilation, field.stride, strict=True))
        return Field(grown, tuple(j * s for j, s in zip(field.stride, strides, strict=True)))
    if type(layer).__name__ in _UPSAMPLING:
        factors = _tuple(layer.size, len(size))
        return Field(size, tuple(j / f for j, f in zip(field.stride, factors, strict=True)))
    return Field(size, field.stride)


def asymmetric_padding(layer: keras.layers.Layer, inputs: list[tuple]) -> list[tuple[int, int, int, int, int]]:
    """For SAME padding: ``(size, kernel, stride, before, after)`` of each dimension padded unevenly."""
    window = _window(layer)
    if window is None or getattr(layer, "padding", None) != "same" or type(layer).__name__ in _TRANSPOSED:
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


def _window(layer: keras.layers.Layer) -> tuple[tuple, tuple, tuple] | None:
    """(kernel, strides, dilation) of a sliding-window layer, else None."""
    name = type(layer).__name__
    if name in _CONV | _TRANSPOSED | _DEPTHWISE | _SEPARABLE:
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
