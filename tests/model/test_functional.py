"""Graph recipes against the same networks written directly in Keras.

Each test builds a network from a recipe and by hand, then checks that they have
the same output shapes and parameter counts, and, after copying the recipe
model's weights into the hand-written one, the same outputs: the strongest
sign that the two are one network.
"""

import keras
import numpy as np
import pytest

from cnnctl.model import build, build_model, check_report
from cnnctl.model.compile import compile_model
from cnnctl.recipe import load_recipe_text


def recipe(text: str):
    return load_recipe_text(text, "r.yaml")


def assert_same_network(ours: keras.Model, theirs: keras.Model, inputs) -> None:
    assert ours.count_params() == theirs.count_params()
    ours_out = keras.tree.flatten(ours.outputs)
    theirs_out = keras.tree.flatten(theirs.outputs)
    assert [tuple(t.shape) for t in ours_out] == [tuple(t.shape) for t in theirs_out]
    theirs.set_weights(ours.get_weights())  # fails if the weights do not line up one to one
    for a, b in zip(keras.tree.flatten(ours(inputs, training=False)),
                    keras.tree.flatten(theirs(inputs, training=False)), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)


RESIDUAL = """
name: resnet_block
model:
  input: [16, 16, 8]
  blocks:
    conv_bn:                     # conv -> batch norm, the unit of every ResNet
      params: {filters: required, kernel_size: 3, strides: 1}
      layers:
        - Conv2D: {filters: $filters, kernel_size: $kernel_size, strides: $strides, padding: same,
                   use_bias: false}
        - BatchNormalization: {}
    residual:                    # ResNet v1 basic block with a projection shortcut
      params: {filters: required, strides: 1}
      graph:
        a: {conv_bn: {filters: $filters, strides: $strides}, from: input}
        a_relu: ReLU
        b: {conv_bn: {filters: $filters}}
        shortcut: {conv_bn: {filters: $filters, kernel_size: 1, strides: $strides}, from: input}
        add: {Add: {}, from: [b, shortcut]}
        out: ReLU
  graph:
    stage: {residual: {filters: 16, strides: 2}}
    gap: GlobalAveragePooling2D
    head: {Dense: {units: 10, activation: softmax}}
"""


def keras_residual() -> keras.Model:
    def conv_bn(x, filters, kernel_size=3, strides=1):
        x = keras.layers.Conv2D(filters, kernel_size, strides=strides, padding="same", use_bias=False)(x)
        return keras.layers.BatchNormalization()(x)

    inputs = keras.Input((16, 16, 8))
    a = keras.layers.ReLU()(conv_bn(inputs, 16, strides=2))
    b = conv_bn(a, 16)
    shortcut = conv_bn(inputs, 16, kernel_size=1, strides=2)
    x = keras.layers.ReLU()(keras.layers.Add()([b, shortcut]))
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))


def test_residual_block_equals_keras():
    ours = build_model(recipe(RESIDUAL))
    x = np.random.default_rng(0).normal(size=(2, 16, 16, 8)).astype("float32")
    assert_same_network(ours, keras_residual(), x)
    # (3*3*8*16) + (3*3*16*16) + (1*1*8*16) convs, 3 batch norms of 4*16, dense 16*10+10
    assert ours.count_params() == 1152 + 2304 + 128 + 3 * 64 + 170
    names = [layer.name for layer in ours.layers]
    assert "stage_a_conv2d" in names and "stage_shortcut_batch_normalization" in names and "stage_add" in names


INCEPTION = """
name: inception_3a
model:
  input: [28, 28, 192]
  blocks:
    inception:                   # GoogLeNet's module: four branches, concatenated on channels
      params: {b1: required, b3r: required, b3: required, b5r: required, b5: required, pool: required}
      graph:
        branch1: {Conv2D: {filters: $b1, kernel_size: 1, activation: relu}, from: input}
        reduce3: {Conv2D: {filters: $b3r, kernel_size: 1, activation: relu}, from: input}
        branch3: {Conv2D: {filters: $b3, kernel_size: 3, padding: same, activation: relu}}
        reduce5: {Conv2D: {filters: $b5r, kernel_size: 1, activation: relu}, from: input}
        branch5: {Conv2D: {filters: $b5, kernel_size: 5, padding: same, activation: relu}}
        pooled: {MaxPooling2D: {pool_size: 3, strides: 1, padding: same}, from: input}
        branch_pool: {Conv2D: {filters: $pool, kernel_size: 1, activation: relu}}
        concat: {Concatenate: {axis: -1}, from: [branch1, branch3, branch5, branch_pool]}
  graph:
    mixed3a: {inception: {b1: 64, b3r: 96, b3: 128, b5r: 16, b5: 32, pool: 32}}
"""


def keras_inception() -> keras.Model:
    inputs = keras.Input((28, 28, 192))
    b1 = keras.layers.Conv2D(64, 1, activation="relu")(inputs)
    b3 = keras.layers.Conv2D(96, 1, activation="relu")(inputs)
    b3 = keras.layers.Conv2D(128, 3, padding="same", activation="relu")(b3)
    b5 = keras.layers.Conv2D(16, 1, activation="relu")(inputs)
    b5 = keras.layers.Conv2D(32, 5, padding="same", activation="relu")(b5)
    bp = keras.layers.MaxPooling2D(3, strides=1, padding="same")(inputs)
    bp = keras.layers.Conv2D(32, 1, activation="relu")(bp)
    return keras.Model(inputs, keras.layers.Concatenate(axis=-1)([b1, b3, b5, bp]))


def test_inception_module_equals_keras():
    ours = build_model(recipe(INCEPTION))
    assert tuple(ours.output.shape) == (None, 28, 28, 256)  # 64 + 128 + 32 + 32: GoogLeNet's 3a
    assert ours.count_params() == 163_696  # GoogLeNet table 1, inception (3a): 159K (without biases)
    x = np.random.default_rng(1).normal(size=(1, 28, 28, 192)).astype("float32")
    assert_same_network(ours, keras_inception(), x)


TWO_IN_TWO_OUT = """
name: two_by_two
model:
  inputs:
    image: [8, 8, 1]
    meta: [5]
  graph:
    conv: {Conv2D: {filters: 4, kernel_size: 3, activation: relu}, from: image}
    flat: Flatten
    dense_meta: {Dense: {units: 6, activation: relu}, from: meta}
    joined: {Concatenate: {}, from: [flat, dense_meta]}
    label: {Dense: {units: 10, activation: softmax}, from: joined}
    size: {Dense: {units: 1}, from: joined}
  outputs: [label, size]
train:
  loss: {label: sparse_categorical_crossentropy, size: mse}
  loss_weights: {label: 1.0, size: 0.5}
  metrics: {label: [accuracy], size: [mae]}
"""


def keras_two_by_two() -> keras.Model:
    image, meta = keras.Input((8, 8, 1), name="image"), keras.Input((5,), name="meta")
    flat = keras.layers.Flatten()(keras.layers.Conv2D(4, 3, activation="relu")(image))
    joined = keras.layers.Concatenate()([flat, keras.layers.Dense(6, activation="relu")(meta)])
    label = keras.layers.Dense(10, activation="softmax")(joined)
    size = keras.layers.Dense(1)(joined)
    return keras.Model([image, meta], [label, size])


def test_two_inputs_two_outputs_equal_keras_and_train_with_per_output_losses():
    loaded = recipe(TWO_IN_TWO_OUT)
    ours = build_model(loaded)
    rng = np.random.default_rng(2)
    x = [rng.normal(size=(16, 8, 8, 1)).astype("float32"), rng.normal(size=(16, 5)).astype("float32")]
    assert_same_network(ours, keras_two_by_two(), x)
    compile_model(ours, loaded)
    y = [rng.integers(0, 10, size=16), rng.normal(size=(16, 1)).astype("float32")]
    logs = ours.fit(x, y, epochs=1, verbose=0).history
    assert {"label_accuracy", "size_mae", "label_loss", "size_loss"} <= set(logs)
    total = logs["loss"][0]
    assert total == pytest.approx(logs["label_loss"][0] + 0.5 * logs["size_loss"][0], rel=1e-3)


SIAMESE = """
name: siamese
model:
  inputs: {left: [8, 8, 1], right: [8, 8, 1]}
  blocks:
    tower:
      layers:
        - Conv2D: {filters: 8, kernel_size: 3, activation: relu}
        - GlobalAveragePooling2D
        - Dense: {units: 16}
  graph:
    left_embedding: {tower: {}, from: left}
    right_embedding: {share: left_embedding, from: right}
    difference: {Subtract: {}, from: [left_embedding, right_embedding]}
    same: {Dense: {units: 1, activation: sigmoid}}
"""


def keras_siamese() -> keras.Model:
    left, right = keras.Input((8, 8, 1)), keras.Input((8, 8, 1))
    tower = [keras.layers.Conv2D(8, 3, activation="relu"), keras.layers.GlobalAveragePooling2D(),
             keras.layers.Dense(16)]

    def embed(x):
        for layer in tower:
            x = layer(x)
        return x

    difference = keras.layers.Subtract()([embed(left), embed(right)])
    return keras.Model([left, right], keras.layers.Dense(1, activation="sigmoid")(difference))


def test_siamese_shares_the_whole_tower():
    loaded = recipe(SIAMESE)
    built = build(loaded)
    rng = np.random.default_rng(3)
    x = [rng.normal(size=(4, 8, 8, 1)).astype("float32"), rng.normal(size=(4, 8, 8, 1)).astype("float32")]
    assert_same_network(built.model, keras_siamese(), x)
    assert built.model.count_params() == (9 * 8 + 8) + (8 * 16 + 16) + 17  # the tower counted once
    same = built.model([x[0], x[0]], training=False)
    bias = float(built.layers["same"].weights[1].numpy()[0])
    np.testing.assert_allclose(np.asarray(same), np.full((4, 1), 1 / (1 + np.exp(-bias))), rtol=1e-5)
    # identical inputs give a zero difference, so the output is sigmoid(bias)
    report = check_report(built)
    shared = [row for row in report["layers"] if row["shares"]]
    assert [row["shares"] for row in shared] == ["left_embedding_conv2d", "left_embedding_global_average_pooling2d",
                                                 "left_embedding_dense"]
    assert all(row["params"] == 0 for row in shared)
    assert shared[0]["inputs"] == ["right"]


def test_sequential_layers_can_use_blocks_and_repeat():
    loaded = recipe("""
name: vgg_like
model:
  input: [16, 16, 3]
  blocks:
    vgg_stage:
      params: {filters: required, convs: 2}
      layers:
        - Conv2D: {filters: $filters, kernel_size: 3, padding: same, activation: relu, repeat: $convs}
        - MaxPooling2D: {pool_size: 2}
  layers:
    - vgg_stage: {filters: 8}
    - vgg_stage: {filters: 16, convs: 3}
    - Flatten
    - Dense: {units: 10, activation: softmax, repeat: 1}
""")
    model = build_model(loaded)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [8, 8, 16, 16, 16]
    assert [c.name for c in convs[:2]] == ["vgg_stage_1_conv2d_1", "vgg_stage_1_conv2d_2"]
    assert tuple(model.output.shape) == (None, 10)
    expected = (27 * 8 + 8) + (72 * 8 + 8) + (72 * 16 + 16) + 2 * (144 * 16 + 16) + (4 * 4 * 16 * 10 + 10)
    assert model.count_params() == expected


def test_expressions_compute_block_parameters():
    model = build_model(recipe("""
name: bottleneck
model:
  input: [8, 8, 16]
  blocks:
    bottleneck:
      params: {filters: required, expansion: 4}
      layers:
        - Conv2D: {filters: $filters, kernel_size: 1}
        - Conv2D: {filters: "${filters * expansion}", kernel_size: 1, name: "expand_${filters}"}
  layers:
    - bottleneck: {filters: 4}
"""))
    assert [layer.filters for layer in model.layers if isinstance(layer, keras.layers.Conv2D)] == [4, 16]
    assert "bottleneck_1_expand_4" in [layer.name for layer in model.layers]


def test_plain_layers_build_a_sequential_model_with_keras_names():
    model = build_model(recipe("name: t\nmodel:\n  input: [4]\n  layers: [Dense: {units: 3}, Dense: {units: 2}]\n"))
    assert isinstance(model, keras.Sequential)
    assert [layer.name for layer in model.layers] == ["dense", "dense_1"]


def test_one_loss_for_two_outputs_with_weights():
    loaded = recipe("""
name: exits
model:
  input: [8, 8, 1]
  graph:
    flat: Flatten
    early: {Dense: {units: 10, activation: softmax}}
    final: {Dense: {units: 10, activation: softmax}, from: flat}
  outputs: [early, final]
train:
  loss_weights: {early: 0.3, final: 1.0}
""")
    model = build_model(loaded)
    compile_model(model, loaded)
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(8, 8, 8, 1)).astype("float32"), rng.integers(0, 10, size=8)
    logs = model.fit(x, (y, y), epochs=1, verbose=0).history
    assert logs["loss"][0] == pytest.approx(0.3 * logs["early_loss"][0] + logs["final_loss"][0], rel=1e-3)
