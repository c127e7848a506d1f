"""What one output position of a layer sees: its receptive field, in input pixels, composed layer by layer.

Along each spatial axis a layer maps an output position ``o`` to the input positions it reads,
``first(o)..last(o)``:

- convolutions (every kind) and pooling: ``s*o - before + d*t`` for the taps ``t`` of the kernel,
  ``before`` being the padding put in front (SAME pads the odd pixel after, as TensorFlow does;
  ``causal`` pads ``d*(k-1)`` before);
- transposed convolutions: the inputs whose kernel taps land on ``o``;
- ``UpSampling``: ``o // f`` (nearest), or the two pixels around ``(o + 1/2)/f - 1/2`` (bilinear);
- ``ZeroPadding`` and ``Cropping``: ``o`` shifted; ``GraphConv`` on its pixel grid: ``o-1..o+1`` (its
  4 or 8 neighbours and itself);
- layers that work on each position alone (activations, normalization in inference, dropout, ``Dense``
  on the channels, merges of tensors of one shape): ``o`` itself.

Composing these maps from the input on is exact. A field's ``size`` is the longest run of input pixels
one output position reads (after an upsampling it can differ between positions: the largest is
given), its ``stride`` how far the runs move from one output position to the next (a fraction after
an upsampling). A layer that mixes every position (global pooling with ``keepdims``, attention,
recurrent layers, ``SqueezeExcite``, ``GroupNormalization``, a ``GraphConv`` with an explicit adjacency),
or one whose window is not known here, makes the field the whole input: exact for the first kind, an
upper bound for the second, never a number smaller than the truth. A layer that changes the number of
axes (``Flatten``, a ``Reshape`` to a sequence, global pooling) ends the field: there is none after it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras

from cnnctl.model.costs import TRANSPOSED, sliding_window

_POINTWISE = {  # what each output position computes from that position of its inputs alone (in inference)
    "Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "Dropout", "SpatialDropout1D", "SpatialDropout2D",
    "SpatialDropout3D", "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization", "Identity",
    "Masking", "BatchNormalization", "Normalization", "Rescaling", "Dense", "Add", "Subtract", "Multiply",
    "Average", "Maximum", "Minimum", "Concatenate", "LocalResponseNormalization",
}
_LAST_AXIS = {"Softmax", "LayerNormalization", "UnitNormalization", "RMSNormalization"}  # pointwise on axis -1
_SHIFTS = {"ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D", "Cropping2D", "Cropping3D"}
_UPSAMPLING = {"UpSampling1D", "UpSampling2D", "UpSampling3D"}

Run = tuple[int, int] | None  # the input positions one output position reads, first..last; None: none


@dataclass(frozen=True)
class Axis:
    """One spatial axis of a field: output position ``o`` reads input pixels ``runs[o % period]`` moved by
    ``(o // period) * shift``."""

    period: int
    shift: int
    runs: tuple[Run, ...]

    def at(self, o: int) -> Run:
        q, r = divmod(o, self.period)
        run = self.runs[r]
        return None if run is None else (run[0] + q * self.shift, run[1] + q * self.shift)

    @property
    def size(self) -> int:
        return max((last - first + 1 for first, last in filter(None, self.runs)), default=0)

    @property
    def stride(self) -> float:
        return self.shift / self.period


@dataclass(frozen=True)
class Whole:
    """A field that is the whole input (see the module's docstring); ``stride``: output positions' spacing."""

    stride: tuple[float | None, ...]


@dataclass(frozen=True)
class Field:
    """The receptive field of a tensor: per input it depends on, its axes (or ``Whole``), and that input's size."""

    parts: dict[str, tuple[Axis, ...] | Whole]
    extents: dict[str, tuple]

    @property
    def whole(self) -> bool:
        return any(isinstance(part, Whole) for part in self.parts.values())

    @property
    def size(self) -> tuple:
        """Per axis, in input pixels: the largest over the inputs (a whole field: the input's size)."""
        sizes = [self.extents[key] if isinstance(part, Whole) else tuple(a.size for a in part)
                 for key, part in self.parts.items()]
        return tuple(_max_of(axis) for axis in zip(*sizes, strict=True))

    @property
    def stride(self) -> tuple:
        part = next(iter(self.parts.values()))
        return part.stride if isinstance(part, Whole) else tuple(a.stride for a in part)

    def to_json(self, layer: str) -> dict:
        """What ``cnnctl check --json`` gives as ``receptive_field``."""
        return {"layer": layer, "size": _whole(self.size), "stride": _whole(self.stride), "whole_input": self.whole}


def input_field(key: str, shape: tuple) -> Field | None:
    """An input of shape (batch, *spatial, channels) sees one pixel; one without spatial axes, none."""
    spatial = tuple(shape[1:-1])
    if not spatial:
        return None
    return Field({key: tuple(Axis(1, 1, ((0, 0),)) for _ in spatial)}, {key: spatial})


def receptive_field(layer: keras.layers.Layer, fields: list[Field | None], inputs: list[tuple],
                    output: tuple) -> Field | None:
    """The field of this call's output from its inputs' fields; None when it depends on no spatial input, or
    once a layer changes the number of axes (``Flatten``, ``Reshape`` to a sequence, global pooling): the
    positions then are no longer the input's."""
    known = [f for f in fields if f is not None]
    if not known or any(len(s) != len(output) for s in inputs):
        return None
    field = _union(known)
    rank = len(output) - 2
    maps = _axis_maps(layer, inputs, output)
    if maps is not None and len(fields) == 1:
        return _compose(field, maps)
    if _pointwise(layer, rank) and all(tuple(s[1:-1]) == tuple(output[1:-1]) for s in inputs):
        return field
    return _spread(field, inputs[0], output)


def _axis_maps(layer: keras.layers.Layer, inputs: list[tuple], output: tuple) -> list[tuple] | None:
    """Per spatial axis ``(period, shift, run_of)``: output position o reads ``run_of(o)`` of the input, and
    ``o + period`` the same moved by ``shift``; None for a layer that is not a window of known shape."""
    name = type(layer).__name__
    if getattr(layer, "data_format", "channels_last") != "channels_last" or len(inputs[0]) != len(output):
        return None
    sizes = list(zip(inputs[0][1:-1], output[1:-1], strict=True))
    window = sliding_window(layer)
    if window is not None:
        maps = []
        for (n_in, n_out), k, s, d in zip(sizes, *window, strict=True):
            taps = [d * t for t in range(k)]
            if name in TRANSPOSED:
                before = _transposed_before(layer.padding, n_in, n_out, s, d * (k - 1) + 1)
                maps.append((s, 1, lambda o, s=s, b=before, taps=taps: _span(
                    (o + b - t) // s for t in taps if (o + b - t) % s == 0)))
            else:
                before = _before(layer.padding, n_in, s, d * (k - 1) + 1)
                maps.append((1, s, lambda o, s=s, b=before, taps=taps: (s * o - b + taps[0], s * o - b + taps[-1])))
        return maps
    rank = len(sizes)
    if name in _SHIFTS:
        pads = _pairs(layer.padding if name.startswith("Zero") else layer.cropping, rank)
        sign = -1 if name.startswith("Zero") else 1
        return [(1, 1, lambda o, c=sign * before: (o + c, o + c)) for before, _ in pads]
    if name in _UPSAMPLING:
        factors = _tuple(layer.size, rank)
        if getattr(layer, "interpolation", "nearest") == "nearest":
            return [(f, 1, lambda o, f=f: (o // f, o // f)) for f in factors]
        if layer.interpolation == "bilinear":  # tf.image.resize: half-pixel centres; an integer point reads one pixel
            return [(f, 1, lambda o, f=f: (math.floor((2 * o + 1 - f) / (2 * f)), math.ceil((2 * o + 1 - f) / (2 * f))))
                    for f in factors]
        return None
    if name == "GraphConv" and layer.adjacency == "grid":  # the pixel and its 4 or 8 neighbours
        return [(1, 1, lambda o: (o - 1, o + 1)) for _ in range(rank)]
    return None


def _compose(field: Field, maps: list[tuple]) -> Field:
    parts = {}
    for key, part in field.parts.items():
        if not isinstance(part, Whole) and len(part) == len(maps):
            parts[key] = tuple(_compose_axis(axis, *m) for axis, m in zip(part, maps, strict=True))
            continue
        stride = part.stride if isinstance(part, Whole) and len(part.stride) == len(maps) else (None,) * len(maps)
        parts[key] = Whole(tuple(None if j is None else j * shift / period
                                 for j, (period, shift, _) in zip(stride, maps, strict=True)))
    return Field(parts, field.extents)


def _compose_axis(axis: Axis, period: int, shift: int, run_of) -> Axis:
    total = period * axis.period
    runs = []
    for o in range(total):
        run = run_of(o)
        if run is None:
            runs.append(None)
            continue
        ends = [axis.at(run[0]), axis.at(run[1])]
        runs.append(None if None in ends else (ends[0][0], ends[1][1]))
    return _reduced(Axis(total, shift * axis.shift, tuple(runs)))


def _reduced(axis: Axis) -> Axis:
    """The same axis with its smallest period."""
    for period in range(1, axis.period):
        if axis.period % period or (axis.shift * period) % axis.period:
            continue
        shorter = Axis(period, axis.shift * period // axis.period, axis.runs[:period])
        if all(shorter.at(o) == axis.runs[o] for o in range(axis.period)):
            return shorter
    return axis


def _union(fields: list[Field]) -> Field:
    """What a merge of tensors with these fields reads: every position's runs joined, per input."""
    parts: dict = {}
    extents: dict = {}
    for field in fields:
        extents.update(field.extents)
        for key, part in field.parts.items():
            have = parts.get(key)
            if have is None:
                parts[key] = part
            elif isinstance(have, Whole) or isinstance(part, Whole) or len(have) != len(part):
                parts[key] = have if isinstance(have, Whole) else part if isinstance(part, Whole) else Whole(
                    (None,) * len(part))
            else:
                parts[key] = tuple(_union_axis(a, b) for a, b in zip(have, part, strict=True))
    return Field(parts, extents)


def _union_axis(a: Axis, b: Axis) -> Axis:
    period = math.lcm(a.period, b.period)
    runs = []
    for o in range(period):
        ra, rb = a.at(o), b.at(o)
        runs.append(ra if rb is None else rb if ra is None else (min(ra[0], rb[0]), max(ra[1], rb[1])))
    return _reduced(Axis(period, a.shift * period // a.period, tuple(runs)))


def _spread(field: Field, shape_in: tuple, output: tuple) -> Field:
    """After a layer that may mix every position: the whole input, output positions spaced as their count says."""
    stride = tuple(None if j is None or n is None or m is None or m == 0 else j * n / m
                   for j, n, m in zip(field.stride, shape_in[1:-1], output[1:-1], strict=True))
    return Field({key: Whole(stride) for key in field.parts}, field.extents)


def _pointwise(layer: keras.layers.Layer, rank: int) -> bool:
    name = type(layer).__name__
    if name in _POINTWISE:
        return True
    if name in _LAST_AXIS:
        axis = getattr(layer, "axis", -1)
        axes = axis if isinstance(axis, (list, tuple)) else [axis]
        return all(a % (rank + 2) == rank + 1 for a in axes)
    if name == "TimeDistributed":
        return _pointwise(layer.layer, rank - 1)
    return False


def _before(padding: str, n: int | None, s: int, span: int) -> int:
    """Pixels of padding a sliding window puts in front of an input of size ``n``."""
    if padding == "causal":
        return span - 1
    if padding != "same":
        return 0
    total = max(span - s, 0) if n is None else max((math.ceil(n / s) - 1) * s + span - n, 0)
    return total // 2


def _transposed_before(padding: str, n_in: int | None, n_out: int | None, s: int, span: int) -> int:
    """A transposed convolution's padding in front: that of the convolution it is the transpose of."""
    if padding != "same":
        return 0
    total = max(span - s, 0) if n_in is None or n_out is None else max((n_in - 1) * s + span - n_out, 0)
    return total // 2


def _span(positions) -> Run:
    found = list(positions)
    return (min(found), max(found)) if found else None


def _pairs(value, rank: int) -> list[tuple[int, int]]:
    """Keras's padding/cropping attribute: per axis a (before, after) pair."""
    if isinstance(value, int):
        return [(value, value)] * rank
    if rank == 1 and len(value) == 2 and all(isinstance(v, int) for v in value):
        return [tuple(value)]
    return [(v, v) if isinstance(v, int) else tuple(v) for v in value]


def _tuple(value, rank: int) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * rank


def _max_of(values) -> int | None:
    values = list(values)
    return None if not values or None in values else max(values)


def _whole(values: tuple) -> list:
    return [v if v is None else int(v) if float(v).is_integer() else round(float(v), 3) for v in values]
