"""cnnctl's own Keras layers, which a recipe names like any ``keras.layers`` class.

Importing this module registers them (package ``cnnctl``), so a ``.keras`` model that
contains them reloads with ``keras.saving.load_model(path, safe_mode=True)`` and no
``custom_objects``. All three are channels-last and written with ``keras.ops``.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

import keras
import numpy as np
from keras import ops

Shape = tuple[int | None, ...]

NORMALIZATIONS = ("symmetric", "row", "none")


def _invalid(name: str, expected: str, value: Any) -> ValueError:
    return ValueError(f"Invalid value for argument `{name}`. Expected {expected}. Received {name}={value!r}")


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise _invalid(name, "a non-negative integer" if minimum == 0 else "a positive integer", value)
    return int(value)


def _check_number(name: str, value: Any, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or value < 0 \
            or (positive and value == 0):
        raise _invalid(name, "a positive number" if positive else "a non-negative number", value)
    return float(value)


def _check_connectivity(connectivity: Any) -> int:
    if connectivity not in (4, 8) or isinstance(connectivity, bool):
        raise _invalid("connectivity", "4 or 8", connectivity)
    return int(connectivity)


def _activation(name: str, value: Any) -> Any:
    try:
        return keras.activations.get(value)
    except (ValueError, TypeError) as error:
        raise _invalid(name, "the name of a Keras activation (such as 'relu') or None", value) from error


def grid_adjacency(height: int, width: int, connectivity: int = 8, sigma: float | None = None) -> np.ndarray:
    """The pixel grid as a graph: an (H*W, H*W) float32 matrix, pixels in row-major order.

    Pixels are neighbours when they share an edge (``connectivity=4``) or an edge or a corner
    (``connectivity=8``). The edge weight is 1, or ``exp(-d**2 / sigma**2)`` with ``d`` the
    distance between pixel centres (1 or sqrt(2)). No self loops, not normalized.
    """
    height, width = _check_int("height", height, 1), _check_int("width", width, 1)
    connectivity = _check_connectivity(connectivity)
    if sigma is not None:
        sigma = _check_number("sigma", sigma, positive=True)
    rows, cols = np.divmod(np.arange(height * width), width)
    adjacency = np.zeros((height * width, height * width), dtype="float32")
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if (dy, dx) == (0, 0) or (connectivity == 4 and dy and dx):
                continue
            r, c = rows + dy, cols + dx
            inside = (r >= 0) & (r < height) & (c >= 0) & (c < width)
            weight = 1.0 if sigma is None else math.exp(-(dy * dy + dx * dx) / sigma**2)
            adjacency[np.flatnonzero(inside), (r * width + c)[inside]] = weight
    return adjacency


def _normalized(adjacency: np.ndarray, normalize: str, self_loops: bool) -> np.ndarray:
    """A (+ I) scaled by D^-1/2 on both sides ("symmetric") or D^-1 on the left ("row")."""
    if self_loops:
        adjacency = adjacency + np.eye(len(adjacency), dtype=adjacency.dtype)
    if normalize == "none":
        return adjacency
    degree = adjacency.sum(axis=1)
    scale = np.zeros_like(degree)  # an isolated node (degree 0) keeps a zero row
    scale[degree > 0] = degree[degree > 0] ** (-0.5 if normalize == "symmetric" else -1.0)
    if normalize == "row":
        return scale[:, None] * adjacency
    return scale[:, None] * adjacency * scale[None, :]


def grid_stencil(height: int, width: int, *, connectivity: int, sigma: float | None, normalize: str,
                 self_loops: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The grid's ``A_hat`` as ``(stencil, left, right)``: ``A_hat X = left * conv3x3(right * X, stencil)``.

    On the pixel grid an edge's weight depends only on the offset between its pixels, so ``A (+ I)`` is one
    3x3 stencil slid over the image with zero padding (a pixel outside the image is no neighbour), and the
    normalization is a per-pixel scale on each side: ``D^-1/2`` on both ("symmetric"), ``D^-1`` on the
    left ("row"), none ("none"). ``left`` and ``right`` have shape (H, W, 1). Equal to ``_normalized(
    grid_adjacency(...))`` applied densely, at 9 multiplications per pixel instead of H*W.
    """
    stencil = np.zeros((3, 3))
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if (dy, dx) != (0, 0) and not (connectivity == 4 and dy and dx):
                stencil[dy + 1, dx + 1] = 1.0 if sigma is None else math.exp(-(dy * dy + dx * dx) / sigma**2)
    stencil[1, 1] = 1.0 if self_loops else 0.0
    padded = np.pad(np.ones((height, width)), 1)
    degree = sum(stencil[i, j] * padded[i:i + height, j:j + width] for i in range(3) for j in range(3))
    ones = np.ones((height, width, 1))
    if normalize == "none":
        return stencil, ones, ones
    scale = np.zeros_like(degree)  # a pixel with no neighbour and no self loop (a 1x1 image) keeps zeros
    scale[degree > 0] = degree[degree > 0] ** (-0.5 if normalize == "symmetric" else -1.0)
    if normalize == "row":
        return stencil, scale[..., None], ones
    return stencil, scale[..., None], scale[..., None]


@keras.saving.register_keras_serializable(package="cnnctl")
class LocalResponseNormalization(keras.layers.Layer):
    """AlexNet's local response normalization across channels, as ``tf.nn.local_response_normalization``.

    ``b[..., i] = a[..., i] / (bias + alpha * sum(a[..., j]**2 for j in [i-r, i+r] ∩ [0, C-1])) ** beta``
    with ``r = depth_radius``. AlexNet's n=5, k=2, alpha=1e-4, beta=0.75 are the defaults.
    Any input of rank >= 2, channels last; no weights.

    Recipe: ``- LocalResponseNormalization: {depth_radius: 2, alpha: 1.0e-4}``
    """

    def __init__(self, depth_radius: int = 2, bias: float = 2.0, alpha: float = 1e-4, beta: float = 0.75,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.depth_radius = _check_int("depth_radius", depth_radius, 0)
        self.bias = _check_number("bias", bias, positive=True)  # keeps the denominator positive
        self.alpha = _check_number("alpha", alpha)
        self.beta = _check_number("beta", beta)

    def build(self, input_shape: Shape) -> None:
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(f"LocalResponseNormalization expects an input of rank >= 2 with a known channel "
                             f"(last) dimension. Received input_shape={input_shape}")

    def call(self, inputs: Any) -> Any:
        channels = inputs.shape[-1]
        radius = min(self.depth_radius, channels - 1)
        squares = ops.square(inputs)
        padded = ops.pad(squares, [(0, 0)] * (len(inputs.shape) - 1) + [(radius, radius)])
        window_sum = sum(padded[..., k:k + channels] for k in range(2 * radius + 1))
        return inputs / ops.power(self.bias + self.alpha * window_sum, self.beta)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return tuple(input_shape)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "depth_radius": self.depth_radius, "bias": self.bias,
                "alpha": self.alpha, "beta": self.beta}


@keras.saving.register_keras_serializable(package="cnnctl")
class SqueezeExcite(keras.layers.Layer):
    """Squeeze-and-excitation channel attention (SENet), channels last.

    ``y = x * gate(W2 · activation(W1 · GAP(x) + b1) + b2)``, GAP the mean over every axis but
    batch and channels, W1 of shape (C, hidden), W2 (hidden, C), ``hidden = max(min_units, C // reduction)``.
    Inputs (batch, steps, C), (batch, H, W, C) or (batch, D, H, W, C); output shape = input shape.

    Recipe: ``- SqueezeExcite: {reduction: 16}``
    """

    def __init__(self, reduction: int = 16, min_units: int = 1, activation: Any = "relu", gate: Any = "sigmoid",
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reduction = _check_int("reduction", reduction, 1)
        self.min_units = _check_int("min_units", min_units, 1)
        self.activation = _activation("activation", activation)
        self.gate = _activation("gate", gate)

    def build(self, input_shape: Shape) -> None:
        if len(input_shape) < 3 or input_shape[-1] is None:
            raise ValueError(f"SqueezeExcite expects (batch, ..., channels) inputs of rank >= 3 with a known "
                             f"channel dimension. Received input_shape={input_shape}")
        channels = input_shape[-1]
        hidden = max(self.min_units, channels // self.reduction)
        self.squeeze_kernel = self.add_weight(name="squeeze_kernel", shape=(channels, hidden),
                                              initializer="glorot_uniform")
        self.squeeze_bias = self.add_weight(name="squeeze_bias", shape=(hidden,), initializer="zeros")
        self.excite_kernel = self.add_weight(name="excite_kernel", shape=(hidden, channels),
                                             initializer="glorot_uniform")
        self.excite_bias = self.add_weight(name="excite_bias", shape=(channels,), initializer="zeros")

    def call(self, inputs: Any) -> Any:
        pooled = ops.mean(inputs, axis=tuple(range(1, len(inputs.shape) - 1)), keepdims=True)
        hidden = self.activation(ops.matmul(pooled, self.squeeze_kernel) + self.squeeze_bias)
        return inputs * self.gate(ops.matmul(hidden, self.excite_kernel) + self.excite_bias)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return tuple(input_shape)

    def macs(self, input_shapes: list[Shape]) -> int:
        """Multiply-accumulates per example (``cnnctl check``): the two small dense layers."""
        channels = input_shapes[0][-1]
        return 2 * channels * max(self.min_units, channels // self.reduction)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "reduction": self.reduction, "min_units": self.min_units,
                "activation": keras.activations.serialize(self.activation),
                "gate": keras.activations.serialize(self.gate)}


@keras.saving.register_keras_serializable(package="cnnctl")
class GraphConv(keras.layers.Layer):
    """Graph convolution over a fixed graph (Kipf & Welling): ``X' = activation(A_hat · X · W + b)``.

    Nodes are the H*W pixels of (batch, H, W, F) images (output (batch, H, W, units)) or the N
    rows of (batch, N, F) node features (output (batch, N, units)). ``adjacency`` is ``"grid"``
    (the pixel grid, see ``grid_adjacency``; images only) or an N x N nested list. ``A = adjacency
    + I`` if ``self_loops``; ``A_hat`` is ``D^-1/2 A D^-1/2`` ("symmetric"), ``D^-1 A`` ("row") or
    ``A`` ("none"), D the diagonal of row sums. A_hat is rebuilt from the config in ``build()``;
    it is a constant, not a weight: the parameters are W (F, units) and b (units).

    Recipe: ``- GraphConv: {units: 32, connectivity: 8, activation: relu}``
    """

    def __init__(self, units: int, *, adjacency: str | list[list[float]] = "grid", connectivity: int = 8,
                 sigma: float | None = None, normalize: str = "symmetric", self_loops: bool = True,
                 activation: Any = None, use_bias: bool = True, kernel_initializer: Any = "glorot_uniform",
                 bias_initializer: Any = "zeros", kernel_regularizer: Any = None, bias_regularizer: Any = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units = _check_int("units", units, 1)
        self.adjacency = self._check_adjacency(adjacency)
        self.connectivity = _check_connectivity(connectivity)
        self.sigma = None if sigma is None else _check_number("sigma", sigma, positive=True)
        if normalize not in NORMALIZATIONS:
            raise _invalid("normalize", f"one of {', '.join(map(repr, NORMALIZATIONS))}", normalize)
        self.normalize = normalize
        self.self_loops = bool(self_loops)
        self.activation = _activation("activation", activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)

    @staticmethod
    def _check_adjacency(adjacency: Any) -> str | list[list[float]]:
        expected = "'grid' or an N x N nested list of non-negative finite numbers"
        if isinstance(adjacency, str):
            if adjacency != "grid":
                raise _invalid("adjacency", expected, adjacency)
            return adjacency
        try:
            matrix = np.asarray(adjacency, dtype="float64")
        except (TypeError, ValueError) as error:
            raise _invalid("adjacency", expected, adjacency) from error
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.size == 0 \
                or not np.isfinite(matrix).all() or (matrix < 0).any():
            raise _invalid("adjacency", expected, adjacency)
        return matrix.tolist()

    def build(self, input_shape: Shape) -> None:
        if len(input_shape) not in (3, 4) or any(dim is None for dim in input_shape[1:]):
            raise ValueError(f"GraphConv expects (batch, N, F) node features or (batch, H, W, F) images with "
                             f"known N, H, W and F. Received input_shape={input_shape}")
        if self.adjacency == "grid":
            if len(input_shape) != 4:
                raise ValueError(f"GraphConv with adjacency='grid' needs (batch, H, W, F) images; for (batch, N, F) "
                                 f"node features give an explicit N x N `adjacency`. "
                                 f"Received input_shape={input_shape}")
            self._stencil = grid_stencil(input_shape[1], input_shape[2], connectivity=self.connectivity,
                                         sigma=self.sigma, normalize=self.normalize, self_loops=self.self_loops)
        else:
            adjacency = np.asarray(self.adjacency, dtype="float32")
            nodes = math.prod(input_shape[1:-1])
            if len(adjacency) != nodes:
                raise ValueError(f"GraphConv's `adjacency` is {len(adjacency)} x {len(adjacency)} but the input has "
                                 f"{nodes} nodes. Received input_shape={input_shape}")
            self._a_hat = _normalized(adjacency, self.normalize, self.self_loops)
        self.kernel = self.add_weight(name="kernel", shape=(input_shape[-1], self.units),
                                      initializer=self.kernel_initializer, regularizer=self.kernel_regularizer)
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(self.units,), initializer=self.bias_initializer,
                                        regularizer=self.bias_regularizer)

    def call(self, inputs: Any) -> Any:
        # Apply A_hat on the narrower side of W. A_hat's small constants are made here, so that every traced
        # graph holds them (a tensor captured from outside is an extra graph input to tf2onnx).
        if self.units <= inputs.shape[-1]:
            x = self._propagate(ops.matmul(inputs, self.kernel))
        else:
            x = ops.matmul(self._propagate(inputs), self.kernel)
        if self.bias is not None:
            x = x + self.bias
        return self.activation(x)

    def _propagate(self, x: Any) -> Any:
        """``A_hat · x`` for each example: on the grid a 3x3 depthwise convolution between two per-pixel scales
        (see ``grid_stencil``); for an explicit adjacency one plain 2-D matmul, (batch * C, N) · A_hat^T (a
        batched einsum does the same, but TFLite's converter does not take it)."""
        channels = x.shape[-1]
        if self.adjacency == "grid":
            stencil, left, right = self._stencil
            kernel = np.broadcast_to(stencil[:, :, None, None], (3, 3, channels, 1))
            if (right != 1).any():
                x = x * ops.convert_to_tensor(right, dtype=x.dtype)
            x = ops.depthwise_conv(x, ops.convert_to_tensor(kernel, dtype=x.dtype), padding="same")
            return x * ops.convert_to_tensor(left, dtype=x.dtype) if (left != 1).any() else x
        nodes, shape = len(self._a_hat), x.shape[1:-1]
        rows = ops.reshape(ops.moveaxis(ops.reshape(x, (-1, nodes, channels)), 1, 2), (-1, nodes))
        out = ops.matmul(rows, ops.convert_to_tensor(self._a_hat.T, dtype=x.dtype))
        return ops.reshape(ops.moveaxis(ops.reshape(out, (-1, channels, nodes)), 1, 2), (-1, *shape, channels))

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (*input_shape[:-1], self.units)

    def macs(self, input_shapes: list[Shape]) -> int:
        """Multiply-accumulates per example: X·W, then A_hat on the narrower side (as ``call`` does): a 3x3
        stencil per pixel on the grid, N x N for an explicit adjacency."""
        features = input_shapes[0][-1]
        nodes = math.prod(input_shapes[0][1:-1])
        taps = 9 if self.adjacency == "grid" else nodes
        return nodes * features * self.units + nodes * taps * min(features, self.units)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units, "adjacency": self.adjacency,
                "connectivity": self.connectivity, "sigma": self.sigma, "normalize": self.normalize,
                "self_loops": self.self_loops, "activation": keras.activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer)}


CUSTOM_LAYERS: dict[str, type[keras.layers.Layer]] = {
    "LocalResponseNormalization": LocalResponseNormalization,
    "SqueezeExcite": SqueezeExcite,
    "GraphConv": GraphConv,
}
