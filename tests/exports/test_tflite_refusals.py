"""A format that cannot take a model says so before training: TFLite and a recurrent layer that is not unrolled
(issue 16, item 16). The refusal is kept true by converting such layers with the real converter."""

from __future__ import annotations

import keras
import pytest
from click.testing import CliRunner

from cnnctl.cli import main

RECIPE = """\
name: rnn
data: {{source: digits}}
model:
  input: [8, 8, 1]
  layers:
    - Reshape: {{target_shape: [8, 8]}}
    - {layer}
    - Dense: {{units: 10, activation: softmax}}
export:
  - savedmodel
  - {export}
"""


@pytest.mark.parametrize(("layer", "export", "refused"), [
    ("LSTM: {units: 4}", "tflite", "'lstm' (LSTM)"),
    ("Bidirectional: {layer: {GRU: {units: 4}}}", "{tflite: {quantize: int8}}", "(GRU)"),
    ("LSTM: {units: 4, unroll: true}", "tflite", None),
    ("LSTM: {units: 4}", "onnx", None),
])
def test_check_refuses_a_recurrent_layer_not_unrolled_for_tflite(tmp_path, layer, export, refused):
    recipe = tmp_path / "rnn.yaml"
    recipe.write_text(RECIPE.format(layer=layer, export=export))
    result = CliRunner().invoke(main, ["check", str(recipe)])
    if refused is None:
        assert result.exit_code == 0, result.output
        return
    assert result.exit_code == 2 and "Traceback" not in result.output
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert line.startswith(f"error: {recipe}:11:") and "export[1]: TFLite cannot convert the recurrent layer " in line
    assert refused in line and "give it `unroll: true`" in line


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["LSTM", "GRU", "SimpleRNN"])
def test_the_converter_refuses_what_check_refuses_and_takes_it_unrolled(tmp_path, kind):
    from cnnctl.exports.formats.tflite import _convert, refuses

    for unroll in (False, True):
        inputs = keras.Input((8, 8))
        model = keras.Model(inputs, keras.layers.Dense(2)(getattr(keras.layers, kind)(4, unroll=unroll)(inputs)))
        saved = tmp_path / f"{kind}-{unroll}"
        model.export(saved, format="tf_saved_model", verbose=False)
        assert (refuses(model) is None) == unroll
        if unroll:
            assert _convert(str(saved), None, None)[4:8] == b"TFL3"
        else:
            with pytest.raises(Exception, match="TensorList"):
                _convert(str(saved), None, None)
