"""The recipes with a keras.applications twin match it: parameters, weights layer by layer, outputs.

Every recipe is also built, checked against docs/recipes.md and trained one step by
test_recipes_train.py, on the builds these tests share (tests.conftest.built_recipe).
"""

import math

import keras
import numpy as np
import pytest

from cnnctl.model import check_report
from tests.conftest import RECIPES, built_recipe

pytestmark = pytest.mark.xdist_group("zoo")  # one worker builds the zoo once for all three files


@pytest.mark.slow
def test_resnet50_matches_keras_applications():
    ours = _recipe("resnet50")
    theirs = keras.applications.ResNet50(weights=None)
    assert ours.model.count_params() == theirs.count_params() == 25_636_712
    assert tuple(ours.model.output.shape) == tuple(theirs.output.shape) == (None, 1000)
    kinds = [type(layer).__name__ for layer in ours.model.layers]
    assert kinds.count("Conv2D") == 53 and kinds.count("Add") == 16  # 49 + 4 projections; 16 blocks
    report = check_report(ours)
    # about 3.9 G multiply-adds per image: the "3.8 x 10^9 FLOPs" of the ResNet paper's table 1
    assert 3.8e9 < report["macs"] < 3.9e9
    assert report["receptive_field"]["size"] == [483, 483] and report["receptive_field"]["stride"] == [32, 32]


@pytest.mark.slow
def test_vgg16_matches_keras_applications():
    ours = _recipe("vgg16").model
    theirs = keras.applications.VGG16(weights=None)
    assert ours.count_params() == theirs.count_params() == 138_357_544
    assert [tuple(w.shape) for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]  # layer by layer
    assert tuple(ours.output.shape) == (None, 1000)


def test_lenet5_has_the_papers_shapes_and_parameters():
    report = check_report(built_recipe("lenet5"))
    assert report["params"] == 61_706  # 156 + 2,416 + 48,120 + 10,164 + 850
    shapes = [tuple(layer["output_shape"]) for layer in report["layers"]]  # without the batch axis
    assert (28, 28, 6) in shapes and (14, 14, 6) in shapes and (10, 10, 16) in shapes and (5, 5, 16) in shapes


def _recipe(stem: str):
    path = next(p for p in RECIPES if p.stem == stem)
    yaml_lines = [line for line in path.read_text().splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert len(yaml_lines) < 100  # blocks keep a 100+ layer network short
    return built_recipe(stem)


def _assert_twins(ours: keras.Model, theirs: keras.Model, variance: tuple[float, float]) -> None:
    """Same layers in the same order, weight by weight, and the same function of the input.

    The function is compared with keras.applications' weights copied into ours, batch-norm statistics drawn
    (moving variance in ``variance``) so that the softmax is neither flat nor saturated: then a different
    epsilon, a missing ReLU6 clip, padding on the wrong side or a misplaced Add changes the output.
    """
    assert [type(layer).__name__ for layer in ours.layers] == [type(layer).__name__ for layer in theirs.layers]
    assert [tuple(w.shape) for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]
    rng = np.random.default_rng(0)
    draw = {"moving_variance": lambda n: rng.uniform(*variance, n), "moving_mean": lambda n: rng.normal(0, 0.2, n),
            "beta": lambda n: rng.normal(0, 0.2, n), "gamma": lambda n: rng.uniform(1, 2, n)}
    for w in theirs.weights:  # the convolutions and the classifier keep Keras's own initial values
        kind = w.path.rsplit("/", 1)[-1]
        if kind in draw:
            w.assign(draw[kind](w.shape).astype("float32"))
    own = ours.get_weights()  # the build is shared (tests.conftest.built_recipe): given back as it was
    ours.set_weights(theirs.get_weights())
    x = rng.uniform(-1, 1, (1, *theirs.input.shape[1:])).astype("float32")  # preprocess_input's range
    expected = np.asarray(theirs(x, training=False))
    assert 0.01 < expected.max() < 0.99  # the output is sensitive to the layers, as said above
    np.testing.assert_allclose(np.asarray(ours(x, training=False)), expected, rtol=1e-4, atol=1e-7)
    ours.set_weights(own)


def _keras_macs(model: keras.Model) -> int:
    """Multiply-adds of a Keras model, counted here from its kernels (not by cnnctl): each kernel weight is used
    once per output position (convolutions, depthwise ones included) or once (dense)."""
    return sum(math.prod(layer.kernel.shape) * math.prod(layer.output.shape[1:-1])
               for layer in model.layers if hasattr(layer, "kernel"))


@pytest.mark.slow
def test_mobilenet_v2_matches_keras_applications():
    built = _recipe("mobilenet_v2")
    ours, theirs = built.model, keras.applications.MobileNetV2(weights=None)  # alpha 1.0, 224x224x3, 1,000 classes
    assert ours.count_params() == theirs.count_params() == 3_538_984
    kinds = [type(layer).__name__ for layer in ours.layers]
    # 17 inverted residual blocks; an Add where stride 1 and channels in == out; padding before the 4 stride-2 ones
    assert kinds.count("DepthwiseConv2D") == 17 and kinds.count("Add") == 10 and kinds.count("ZeroPadding2D") == 4
    _assert_twins(ours, theirs, variance=(0.02, 0.1))
    macs = check_report(built)["macs"]
    assert macs == _keras_macs(theirs)
    # the paper's table 4: 300M multiply-adds (rounded); this layout, the paper's table 2, is within 1 % of it
    assert 297e6 < macs < 303e6


@pytest.mark.slow
def test_inception_v3_matches_keras_applications():
    built = _recipe("inception_v3")
    ours, theirs = built.model, keras.applications.InceptionV3(weights=None)  # 299x299x3, 1,000 classes
    assert ours.count_params() == theirs.count_params() == 23_851_784
    kinds = [type(layer).__name__ for layer in ours.layers]
    assert kinds.count("Conv2D") == 94 and kinds.count("Concatenate") == 15  # 11 modules, 2 x 2 inner in mixed9-10
    _assert_twins(ours, theirs, variance=(0.2, 1.0))
    macs = check_report(built)["macs"]
    assert macs == _keras_macs(theirs)
    # the paper's abstract: "5 billion multiply-adds", a round figure; torchvision and timm give 5.71 G for this
    # layout at 299x299 (no auxiliary head); within 1 % of that, and over the paper's 5 billion
    assert 5.65e9 < macs < 5.77e9
