"""The serving model in the form an exporter takes: inference mode baked in, float32 where a format needs it."""

from __future__ import annotations

import keras

from cnnctl.serving.model import PREPROCESSING


def inference_graph(serving: keras.Model) -> keras.Model:
    """The serving model's chain (input, preprocessing, trained model) called with ``training=False`` in its graph.

    Keras's exporters call a model without ``training``; an image preprocessing
    layer such as CenterCrop then takes its own default (True) and the layers after
    it run in training mode: Dropout drops, BatchNormalization uses batch statistics.
    Baked into the graph, inference mode holds for every runtime, and for whoever
    calls the exported .keras model without ``training=False``.
    """
    steps = serving.layers[1:]  # [preprocessing,] trained model: the chain serving_model builds
    if len(serving.inputs) != 1 or not 1 <= len(steps) <= 2 or (len(steps) == 2 and steps[0].name != PREPROCESSING):
        raise ValueError(f"{serving.name} is not the chain cnnctl.serving.model.serving_model builds")
    inputs = keras.Input(shape=tuple(serving.inputs[0].shape[1:]), dtype=serving.inputs[0].dtype,
                         name=serving.inputs[0].name)
    x = inputs
    for layer in steps:
        x = layer(x, training=False)
    return keras.Model(inputs, x, name=serving.name)


def float32_twin(model: keras.Model, *, safe_mode: bool = True) -> keras.Model:
    """A mixed-precision model rebuilt with float32 layers and the same weights (variables are float32 already).

    TFLite has no built-in float16 convolution and Keras's ONNX exporter wants
    float32 models: these formats carry the twin, which computes in float32 what
    the mixed model computes in float16 or bfloat16.
    """
    def float32(node):
        if isinstance(node, dict):
            if node.get("class_name") == "DTypePolicy" and str(node["config"].get("name", "")).startswith("mixed_"):
                return {**node, "config": {**node["config"], "name": "float32"}}
            return {k: float32(v) for k, v in node.items()}
        return [float32(v) for v in node] if isinstance(node, list) else node

    twin = keras.saving.deserialize_keras_object(float32(keras.saving.serialize_keras_object(model)),
                                                 safe_mode=safe_mode)
    twin.set_weights(model.get_weights())
    return twin


def mixed_policy(model: keras.Model) -> str | None:
    """``mixed_float16`` or ``mixed_bfloat16`` if any layer (nested models too) computes in it."""
    def layers(m):
        for layer in m.layers:
            yield layer
            if isinstance(layer, keras.Model):
                yield from layers(layer)

    names = {layer.dtype_policy.name for layer in layers(model)}
    return next((p for p in ("mixed_bfloat16", "mixed_float16") if p in names), None)


def output_layers(model: keras.Model) -> list[str]:
    """The layers the trained model's outputs come from, in order: what ``output_0``, ... are."""
    names = getattr(model, "output_names", None)  # a functional model's; a Sequential ends at its last layer
    return list(names) if names else [model.layers[-1].name]
