"""cnnctl's custom layers against hand computations: LRN, squeeze-and-excite, graph convolution.

Every expected value is computed here with numpy loops, independently of the layer code.
"""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from cnnctl.model.custom_layers import (
    CUSTOM_LAYERS,
    GraphConv,
    LocalResponseNormalization,
    SqueezeExcite,
    grid_adjacency,
)

LRN_DEFAULTS = {"depth_radius": 2, "bias": 2.0, "alpha": 1e-4, "beta": 0.75}


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def as_numpy(x) -> np.ndarray:
    return keras.ops.convert_to_numpy(x)


# --- LocalResponseNormalization ------------------------------------------------------------------

def lrn_by_hand(a: np.ndarray, depth_radius: int, bias: float, alpha: float, beta: float) -> np.ndarray:
    out = np.empty_like(a)
    channels = a.shape[-1]
    for i in range(channels):
        window = range(max(0, i - depth_radius), min(channels - 1, i + depth_radius) + 1)
        square_sum = sum(a[..., j] ** 2 for j in window)
        out[..., i] = a[..., i] / (bias + alpha * square_sum) ** beta
    return out


@pytest.mark.parametrize("kwargs", [
    {},  # AlexNet: n=5, k=2, alpha=1e-4, beta=0.75
    {"depth_radius": 1, "bias": 1.0, "alpha": 0.5, "beta": 0.5},
    {"depth_radius": 0, "bias": 0.5, "alpha": 2.0, "beta": 1.0},
    {"depth_radius": 9, "bias": 1.0, "alpha": 0.3, "beta": 0.75},  # window wider than the 7 channels
])
def test_lrn_matches_a_loop_over_channels_and_tensorflow(rng, kwargs):
    a = rng.normal(size=(2, 3, 3, 7)).astype("float32")
    layer = LocalResponseNormalization(**kwargs)
    out = as_numpy(layer(a))
    args = {**LRN_DEFAULTS, **kwargs}
    np.testing.assert_allclose(out, lrn_by_hand(a.astype("float64"), **args), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(out, tf.nn.local_response_normalization(a, **args).numpy(), rtol=1e-5, atol=1e-7)
    assert layer.count_params() == 0
    assert layer.compute_output_shape((None, 3, 3, 7)) == (None, 3, 3, 7)


@pytest.mark.parametrize("shape", [(4, 7), (2, 5, 7), (1, 2, 2, 2, 7)])
def test_lrn_works_on_any_rank_with_channels_last(rng, shape):
    a = rng.normal(size=shape).astype("float32")
    out = as_numpy(LocalResponseNormalization(depth_radius=1, alpha=0.5)(a))
    np.testing.assert_allclose(out, lrn_by_hand(a.astype("float64"), 1, 2.0, 0.5, 0.75), rtol=1e-5, atol=1e-7)


# --- SqueezeExcite -------------------------------------------------------------------------------

def squeeze_excite_by_hand(x, weights, activation) -> np.ndarray:
    w1, b1, w2, b2 = weights
    out = np.empty_like(x)
    channels, hidden = w1.shape
    for n in range(len(x)):
        pooled = [x[n, ..., c].mean() for c in range(channels)]
        h = [activation(sum(pooled[c] * w1[c, k] for c in range(channels)) + b1[k]) for k in range(hidden)]
        for c in range(channels):
            gate = 1 / (1 + math.exp(-(sum(h[k] * w2[k, c] for k in range(hidden)) + b2[c])))
            out[n, ..., c] = x[n, ..., c] * gate
    return out


@pytest.mark.parametrize(("shape", "activation", "by_hand"), [
    ((2, 4, 4, 8), "relu", lambda v: max(v, 0.0)),
    ((2, 5, 8), "relu", lambda v: max(v, 0.0)),
    ((2, 2, 3, 3, 8), "tanh", math.tanh),
])
def test_squeeze_excite_matches_a_hand_computation_with_set_weights(rng, shape, activation, by_hand):
    x = rng.normal(size=shape).astype("float32")
    layer = SqueezeExcite(reduction=4, activation=activation)
    layer.build(shape)
    weights = [rng.normal(size=w.shape).astype("float32") for w in layer.get_weights()]
    assert [w.shape for w in weights] == [(8, 2), (2,), (2, 8), (8,)]
    layer.set_weights(weights)
    out = as_numpy(layer(x))
    assert out.shape == shape == layer.compute_output_shape(shape)
    expected = squeeze_excite_by_hand(x.astype("float64"), [w.astype("float64") for w in weights], by_hand)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("kwargs", "hidden"), [
    ({"reduction": 4}, 2),
    ({}, 1),  # 8 // 16 = 0, at least min_units=1
    ({"min_units": 4}, 4),
])
def test_squeeze_excite_parameter_count(kwargs, hidden):
    layer = SqueezeExcite(**kwargs)
    layer.build((None, 4, 4, 8))
    assert layer.count_params() == 2 * 8 * hidden + hidden + 8


# --- GraphConv -----------------------------------------------------------------------------------

GRID_3X3_4 = np.array([
    [0, 1, 0, 1, 0, 0, 0, 0, 0],
    [1, 0, 1, 0, 1, 0, 0, 0, 0],
    [0, 1, 0, 0, 0, 1, 0, 0, 0],
    [1, 0, 0, 0, 1, 0, 1, 0, 0],
    [0, 1, 0, 1, 0, 1, 0, 1, 0],
    [0, 0, 1, 0, 1, 0, 0, 0, 1],
    [0, 0, 0, 1, 0, 0, 0, 1, 0],
    [0, 0, 0, 0, 1, 0, 1, 0, 1],
    [0, 0, 0, 0, 0, 1, 0, 1, 0],
])
PATH_4 = [[0, 1, 0, 0], [1, 0, 2, 0], [0, 2, 0, 1], [0, 0, 1, 0]]  # a weighted path 0-1-2-3


def grid_by_hand(height: int, width: int, connectivity: int, sigma: float | None = None) -> np.ndarray:
    a = np.zeros((height * width, height * width))
    for r1 in range(height):
        for c1 in range(width):
            for r2 in range(height):
                for c2 in range(width):
                    dr, dc = abs(r1 - r2), abs(c1 - c2)
                    if (dr + dc == 1) or (connectivity == 8 and dr == dc == 1):
                        weight = 1 if sigma is None else math.exp(-(dr**2 + dc**2) / sigma**2)
                        a[r1 * width + c1, r2 * width + c2] = weight
    return a


def normalized_by_hand(a, normalize: str, self_loops: bool) -> np.ndarray:
    a = np.array(a, dtype="float64") + (np.eye(len(a)) if self_loops else 0)
    n = len(a)
    degree = [sum(a[i, j] for j in range(n)) for i in range(n)]
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if normalize == "symmetric":
                out[i, j] = a[i, j] / math.sqrt(degree[i] * degree[j])
            elif normalize == "row":
                out[i, j] = a[i, j] / degree[i]
            else:
                out[i, j] = a[i, j]
    return out


def layer_a_hat(n: int, **kwargs) -> np.ndarray:
    """The layer's A_hat, read through its output: X = I and W = I give A_hat X W = A_hat."""
    layer = GraphConv(n, use_bias=False, **kwargs)
    layer.build((None, n, n))
    layer.set_weights([np.eye(n, dtype="float32")])
    return as_numpy(layer(np.eye(n, dtype="float32")[None]))[0]


def test_grid_adjacency_matches_hand_written_matrices():
    np.testing.assert_array_equal(grid_adjacency(3, 3, 4), GRID_3X3_4)
    np.testing.assert_array_equal(grid_adjacency(2, 2, 8), np.ones((4, 4)) - np.eye(4))
    np.testing.assert_array_equal(grid_adjacency(2, 2, 4), [[0, 1, 1, 0], [1, 0, 0, 1], [1, 0, 0, 1], [0, 1, 1, 0]])
    # degrees: corner 2 / 3, edge 3 / 5, centre 4 / 8
    np.testing.assert_array_equal(grid_adjacency(3, 3, 4).sum(axis=1).reshape(3, 3), [[2, 3, 2], [3, 4, 3], [2, 3, 2]])
    np.testing.assert_array_equal(grid_adjacency(3, 3, 8).sum(axis=1).reshape(3, 3), [[3, 5, 3], [5, 8, 5], [3, 5, 3]])
    np.testing.assert_array_equal(grid_adjacency(3, 4, 8), grid_by_hand(3, 4, 8))


def test_grid_adjacency_gaussian_weights():
    side, diagonal = math.exp(-1 / 4), math.exp(-2 / 4)  # sigma = 2: exp(-d^2 / sigma^2), d = 1 or sqrt(2)
    expected = [[0, side, side, diagonal], [side, 0, diagonal, side],
                [side, diagonal, 0, side], [diagonal, side, side, 0]]
    np.testing.assert_allclose(grid_adjacency(2, 2, 8, sigma=2.0), expected, rtol=1e-6)
    without_diagonals = np.where(np.array(expected) == diagonal, 0, expected)
    np.testing.assert_allclose(grid_adjacency(2, 2, 4, sigma=2.0), without_diagonals, rtol=1e-6)


@pytest.mark.parametrize("normalize", ["symmetric", "row", "none"])
@pytest.mark.parametrize("self_loops", [True, False])
def test_graph_conv_normalization_matches_a_hand_computation(normalize, self_loops):
    a_hat = layer_a_hat(4, adjacency=PATH_4, normalize=normalize, self_loops=self_loops)
    np.testing.assert_allclose(a_hat, normalized_by_hand(PATH_4, normalize, self_loops), rtol=1e-6)
    if normalize == "row":
        np.testing.assert_allclose(a_hat.sum(axis=1), 1, rtol=1e-6)  # the mean of the neighbours


def test_graph_conv_isolated_node_gets_zeros_not_nan():
    a_hat = layer_a_hat(3, adjacency=[[0, 1, 0], [1, 0, 0], [0, 0, 0]], self_loops=False)
    np.testing.assert_allclose(a_hat, [[0, 1, 0], [1, 0, 0], [0, 0, 0]])


@pytest.mark.parametrize(("connectivity", "sigma", "units"), [(4, None, 4), (8, None, 1), (8, 1.5, 3)])
def test_graph_conv_on_an_image_matches_a_hat_x_w_plus_b(rng, connectivity, sigma, units):
    x = rng.normal(size=(2, 3, 3, 2)).astype("float32")
    layer = GraphConv(units, connectivity=connectivity, sigma=sigma, activation="relu")
    layer.build(x.shape)
    w, b = rng.normal(size=(2, units)).astype("float32"), rng.normal(size=units).astype("float32")
    layer.set_weights([w, b])
    a_hat = normalized_by_hand(grid_by_hand(3, 3, connectivity, sigma), "symmetric", True)
    expected = np.maximum(a_hat @ x.reshape(2, 9, 2) @ w + b, 0).reshape(2, 3, 3, units)
    np.testing.assert_allclose(as_numpy(layer(x)), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("normalize", ["symmetric", "row", "none"])
@pytest.mark.parametrize("self_loops", [True, False])
@pytest.mark.parametrize(("connectivity", "sigma"), [(4, None), (8, None), (8, 0.7)])
def test_graph_conv_on_a_grid_applies_the_dense_a_hat(rng, normalize, self_loops, connectivity, sigma):
    """The grid's stencil form equals A_hat built densely from the adjacency, border pixels included."""
    x = rng.normal(size=(2, 4, 5, 3)).astype("float32")
    layer = GraphConv(3, connectivity=connectivity, sigma=sigma, normalize=normalize, self_loops=self_loops,
                      use_bias=False)
    layer.build(x.shape)
    layer.set_weights([np.eye(3, dtype="float32")])
    a_hat = normalized_by_hand(grid_by_hand(4, 5, connectivity, sigma), normalize, self_loops)
    expected = (a_hat @ x.reshape(2, 20, 3)).reshape(x.shape)
    np.testing.assert_allclose(as_numpy(layer(x)), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [(2, 4, 3), (2, 2, 2, 3)])
def test_graph_conv_with_an_explicit_adjacency(rng, shape):
    x = rng.normal(size=shape).astype("float32")
    layer = GraphConv(2, adjacency=PATH_4, normalize="row")
    layer.build(shape)
    w, b = rng.normal(size=(3, 2)).astype("float32"), rng.normal(size=2).astype("float32")
    layer.set_weights([w, b])
    expected = normalized_by_hand(PATH_4, "row", True) @ x.reshape(2, 4, 3) @ w + b
    out = as_numpy(layer(x))
    assert out.shape == (*shape[:-1], 2) == layer.compute_output_shape(shape)
    np.testing.assert_allclose(out, expected.reshape(out.shape), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("shape", "nodes"), [((None, 4, 5), 4), ((None, 2, 3, 5), 6)])
def test_graph_conv_node_count_mismatch_names_both_numbers(shape, nodes):
    layer = GraphConv(2, adjacency=[[0, 1, 0], [1, 0, 1], [0, 1, 0]])
    with pytest.raises(ValueError, match=rf"3 x 3 but the input has {nodes} nodes"):
        layer.build(shape)


def test_graph_conv_grid_needs_an_image():
    with pytest.raises(ValueError, match="explicit N x N `adjacency`"):
        GraphConv(2).build((None, 9, 5))


@pytest.mark.parametrize(("use_bias", "params"), [(True, 3 * 5 + 5), (False, 3 * 5)])
def test_graph_conv_counts_only_w_and_b(use_bias, params):
    layer = GraphConv(5, use_bias=use_bias)
    layer.build((None, 8, 8, 3))  # the 64 x 64 adjacency is not a weight
    assert layer.count_params() == params
    assert layer.non_trainable_weights == []


# --- All layers: registration, saving, training, argument checks ---------------------------------

def test_custom_layers_are_registered_under_cnnctl():
    for name, cls in CUSTOM_LAYERS.items():
        assert cls.__name__ == name
        assert keras.saving.get_registered_name(cls) == f"cnnctl>{name}"


IN_A_MODEL = [
    pytest.param(lambda: LocalResponseNormalization(depth_radius=1, alpha=0.5), (4, 4, 6), id="lrn"),
    pytest.param(lambda: SqueezeExcite(reduction=4), (4, 4, 8), id="squeeze_excite"),
    pytest.param(lambda: GraphConv(3, sigma=1.0, activation="tanh", kernel_regularizer="l2"), (3, 3, 2), id="grid"),
    pytest.param(lambda: GraphConv(3, adjacency=PATH_4, normalize="none"), (4, 2), id="explicit_graph"),
]


def small_model(layer: keras.layers.Layer, shape: tuple[int, ...]) -> keras.Sequential:
    return keras.Sequential([keras.Input(shape), layer, keras.layers.Flatten(), keras.layers.Dense(2)])


@pytest.mark.parametrize(("make_layer", "shape"), IN_A_MODEL)
def test_saved_model_reloads_in_safe_mode_with_identical_predictions(tmp_path, rng, make_layer, shape):
    model = small_model(make_layer(), shape)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded.layers[0]) is type(model.layers[0])
    assert loaded.layers[0].get_config() == model.layers[0].get_config()
    x = rng.normal(size=(3, *shape)).astype("float32")
    np.testing.assert_array_equal(as_numpy(loaded(x, training=False)), as_numpy(model(x, training=False)))


@pytest.mark.parametrize(("make_layer", "shape"), IN_A_MODEL)
def test_one_training_step_changes_every_trainable_weight(rng, make_layer, shape):
    keras.utils.set_random_seed(0)
    model = small_model(make_layer(), shape)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="mse")
    before = [as_numpy(w).copy() for w in model.trainable_weights]
    x, y = rng.normal(size=(4, *shape)).astype("float32"), rng.normal(size=(4, 2)).astype("float32")
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    after = [as_numpy(w) for w in model.trainable_weights]
    assert len(before) == len(model.layers[0].trainable_weights) + 2  # + the Dense kernel and bias
    assert all(not np.array_equal(b, a) for b, a in zip(before, after, strict=True))


@pytest.mark.parametrize(("make", "argument"), [
    (lambda: LocalResponseNormalization(depth_radius=1.5), "depth_radius"),
    (lambda: LocalResponseNormalization(bias=0), "bias"),
    (lambda: LocalResponseNormalization(alpha=-1e-4), "alpha"),
    (lambda: LocalResponseNormalization(beta="0.75"), "beta"),
    (lambda: SqueezeExcite(reduction=0), "reduction"),
    (lambda: SqueezeExcite(min_units=-1), "min_units"),
    (lambda: SqueezeExcite(activation="rleu"), "activation"),
    (lambda: SqueezeExcite(gate="sigmod"), "gate"),
    (lambda: GraphConv(0), "units"),
    (lambda: GraphConv(True), "units"),
    (lambda: GraphConv(4, connectivity=6), "connectivity"),
    (lambda: GraphConv(4, normalize="mean"), "normalize"),
    (lambda: GraphConv(4, sigma=0.0), "sigma"),
    (lambda: GraphConv(4, adjacency="ring"), "adjacency"),
    (lambda: GraphConv(4, adjacency=[[0, 1]]), "adjacency"),
    (lambda: GraphConv(4, adjacency=[[0, 1], [1]]), "adjacency"),
    (lambda: GraphConv(4, adjacency=[[0, -1], [-1, 0]]), "adjacency"),
    (lambda: GraphConv(4, adjacency=[[0, math.nan], [1, 0]]), "adjacency"),
    (lambda: grid_adjacency(3, 3, connectivity=6), "connectivity"),
    (lambda: grid_adjacency(0, 3), "height"),
])
def test_invalid_arguments_raise_value_error_naming_the_argument(make, argument):
    with pytest.raises(ValueError, match=f"Invalid value for argument `{argument}`. Expected .* Received {argument}="):
        make()


def test_error_message_says_what_was_expected_and_received():
    with pytest.raises(ValueError) as error:
        LocalResponseNormalization(depth_radius=-1)
    assert str(error.value) == ("Invalid value for argument `depth_radius`. Expected a non-negative integer. "
                                "Received depth_radius=-1")
