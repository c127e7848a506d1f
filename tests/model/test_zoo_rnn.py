"""The recurrent recipes read a digit as a sequence of 8 rows of 8 pixels. Each trains, as shipped, to at
least the test accuracy its ``# Measured:`` line promises (``tested >= X``), and digits_cnn_rnn is
really two branches, a convolutional one and a recurrent one, meeting at a Concatenate.
"""

import json
import re
from pathlib import Path

import keras
import pytest

from cnnctl import train
from cnnctl.model import build
from cnnctl.recipe import load_recipe

RECIPES = Path(__file__).parents[2] / "recipes"
RECURRENT = {"digits_lstm": "LSTM", "digits_gru": "GRU", "digits_bilstm": "Bidirectional", "digits_cnn_rnn": "LSTM"}
RNN_CLASSES = (keras.layers.LSTM, keras.layers.GRU, keras.layers.SimpleRNN, keras.layers.Bidirectional)


def floor(path: Path) -> float:
    """The accuracy the recipe's ``# Measured:`` line says the tests assert."""
    (line,) = [line for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("# Measured: ")]
    match = re.search(r"tested >= (0\.\d+)", line)
    assert match, f"{path.name}: its # Measured: line gives no 'tested >= X': {line}"
    return float(match.group(1))


def upstream(tensor) -> set[type]:
    """The classes of every layer ``tensor`` depends on, back to the model's inputs."""
    seen, todo = set(), [tensor]
    while todo:
        history = todo.pop()._keras_history
        layer = history.operation
        seen.add(type(layer))
        todo.extend(layer._inbound_nodes[history.node_index].input_tensors)
    return seen


@pytest.mark.parametrize("name", sorted(RECURRENT))
def test_the_recurrent_layer_reads_eight_rows_of_eight_pixels(name):
    model = build(load_recipe(str(RECIPES / f"{name}.yaml"))).model
    (rnn,) = [layer for layer in model.layers if isinstance(layer, RNN_CLASSES)]
    assert type(rnn).__name__ == RECURRENT[name]
    assert tuple(rnn.input.shape) == (None, 8, 8)  # (batch, 8 time steps: the rows, 8 features: the pixels)
    cells = [rnn.forward_layer, rnn.backward_layer] if isinstance(rnn, keras.layers.Bidirectional) else [rnn]
    assert all(cell.unroll for cell in cells)  # TFLite converts unrolled recurrent layers only (TF 2.21)
    if name == "digits_bilstm":
        assert isinstance(rnn.forward_layer, keras.layers.LSTM) and rnn.backward_layer.go_backwards


def test_cnn_rnn_is_a_conv_branch_and_a_recurrent_branch_concatenated():
    model = build(load_recipe(str(RECIPES / "digits_cnn_rnn.yaml"))).model
    assert len(model.inputs) == 1 and len(model.outputs) == 1
    (concat,) = [layer for layer in model.layers if isinstance(layer, keras.layers.Concatenate)]
    assert keras.layers.Concatenate in upstream(model.outputs[0])
    branches = [upstream(tensor) for tensor in concat.input]
    assert len(branches) == 2
    conv = [b for b in branches if keras.layers.Conv2D in b]
    recurrent = [b for b in branches if any(issubclass(c, RNN_CLASSES) for c in b)]
    assert len(conv) == len(recurrent) == 1 and conv[0] is not recurrent[0]  # each path is one kind only
    assert keras.layers.InputLayer in conv[0] and keras.layers.InputLayer in recurrent[0]  # both read the image


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RECURRENT))
def test_recipe_trains_as_shipped_to_its_measured_accuracy(name, tmp_path):
    path = RECIPES / f"{name}.yaml"
    run = train(load_recipe(str(path)), runs_dir=tmp_path, progress=False).run.path
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["test"]["accuracy"] >= floor(path), metrics["test"]
