"""Recipe validation and --set overrides: every problem located, nothing silent."""

import subprocess
import sys

import pytest

from cnnctl.errors import RecipeError
from cnnctl.recipe import dump_recipe, load_recipe, load_recipe_text
from tests.conftest import ROOT

MINIMAL = """\
name: t
model:
  input: [8, 8, 1]
  layers:
    - Flatten
    - Dense: {units: 10, activation: softmax}
"""


def problems(text: str, overrides=()) -> list:
    with pytest.raises(RecipeError) as err:
        load_recipe_text(text, "r.yaml", overrides)
    return err.value.problems


def test_defaults_are_filled_in():
    recipe = load_recipe_text(MINIMAL, "r.yaml")
    assert recipe.data.source == "digits"
    assert recipe.data.split.validation == 0.1 and recipe.data.split.test == 0.2
    assert recipe.train.epochs == 10 and recipe.train.optimizer == "adam"
    assert recipe.model.layers[1] == {"Dense": {"units": 10, "activation": "softmax"}}


def test_name_defaults_to_file_stem(write_recipe):
    path = write_recipe(MINIMAL.replace("name: t\n", ""), name="my recipe.yaml")
    assert load_recipe(str(path)).name == "my_recipe"


def test_unknown_key_has_did_you_mean_and_line():
    (p,) = problems(MINIMAL + "train:\n  epcohs: 3\n")
    assert (p.where, p.path) == ("r.yaml:8:3", "train.epcohs")
    assert "unknown key 'epcohs'" in p.message and "did you mean 'epochs'" in p.message


def test_unknown_section_lists_known_keys_when_nothing_is_close():
    (p,) = problems(MINIMAL + "zzz: 1\n")
    assert p.path == "zzz" and "known keys:" in p.message and "train" in p.message


def test_all_problems_reported_at_once():
    text = MINIMAL + "data: {batch_size: 0}\ntrain: {epochs: three, mode: maxx}\n"
    found = {p.path: p for p in problems(text)}
    assert set(found) == {"data.batch_size", "train.epochs", "train.mode"}
    assert found["data.batch_size"].where == "r.yaml:7:20"
    assert "greater than 0" in found["data.batch_size"].message
    assert "valid integer" in found["train.epochs"].message
    assert "did you mean 'max'" in found["train.mode"].message


def test_types_are_strict():
    found = {p.path for p in problems(MINIMAL + "data: {shuffle: 1, batch_size: '8'}\n")}
    assert found == {"data.shuffle", "data.batch_size"}


def test_missing_model_input():
    (p,) = problems("name: t\nmodel:\n  layers: [Flatten]\n")
    assert p.path == "model" and "give the model's input shape as input: [h, w, c]" in p.message


def test_split_must_leave_training_data():
    (p,) = problems(MINIMAL + "data:\n  split: {validation: 0.5, test: 0.5}\n")
    assert p.path == "data.split" and "leave nothing to train on" in p.message


def test_layer_with_two_keys_explains_indentation():
    text = MINIMAL.replace("    - Flatten\n", "    - Conv2D: {filters: 3, kernel_size: 3}\n      Flatten: {}\n")
    (p,) = problems(text)
    assert p.path == "model.layers[0]" and "indentation" in p.message


def test_empty_and_non_mapping_recipes():
    assert "empty" in problems("")[0].message
    assert "expected a mapping" in problems("- a\n- b\n")[0].message


def test_learning_rate_in_exponent_notation_is_a_number():
    recipe = load_recipe_text(MINIMAL + "train:\n  optimizer: {Adam: {learning_rate: 1e-3}}\n", "r.yaml")
    assert recipe.train.optimizer == {"Adam": {"learning_rate": 0.001}}


def test_set_overrides_typed_values_and_list_items():
    recipe = load_recipe_text(MINIMAL, "r.yaml", ["train.epochs=3", "model.layers[1].Dense.units=12",
                                                   "train.optimizer={SGD: {learning_rate: 1e-2}}"])
    assert recipe.train.epochs == 3
    assert recipe.model.layers[1] == {"Dense": {"units": 12, "activation": "softmax"}}
    assert recipe.train.optimizer == {"SGD": {"learning_rate": 0.01}}


@pytest.mark.parametrize("switch", ["true", "false"])
def test_set_a_key_inside_a_switch_opens_it_into_options(switch):
    recipe = load_recipe_text(MINIMAL + f"log: {{tensorboard: {switch}}}\n", "r.yaml",
                              ["log.tensorboard.histogram_freq=0"])
    assert recipe.log.tensorboard.histogram_freq == 0
    assert recipe.log.tensorboard.enabled is (switch == "true")
    assert recipe.log.tensorboard.input_images == 16  # the other options keep their defaults


def test_set_unknown_key_is_located_at_the_flag():
    (p,) = problems(MINIMAL, ["train.epoch=3"])
    assert p.where == "--set train.epoch=3" and "did you mean 'epochs'" in p.message


@pytest.mark.parametrize("flag, words", [
    ("train.epochs", "expected KEY=VALUE"),
    ("model.layers[9].Dense.units=3", "no item [9]"),
    ("model..x=1", "not a key path"),
    ("train.epochs=[1", "the value is invalid YAML"),
])
def test_bad_set_flags(flag, words):
    (p,) = problems(MINIMAL, [flag])
    assert words in p.message and p.where == f"--set {flag}"


def test_resolved_recipe_round_trips():
    recipe = load_recipe_text(MINIMAL, "r.yaml", ["train.epochs=4"])
    again = load_recipe_text(dump_recipe(recipe), "resolved.yaml")
    assert again.model_dump() == recipe.model_dump()


def test_validation_does_not_import_tensorflow():
    code = ("import sys\nfrom cnnctl.recipe import load_recipe_text\nimport cnnctl.cli\n"
            "try:\n    load_recipe_text('name: t\\nmodel: {input: [1], layers: [Flatten]}\\ntrain: {epochs: 0}\\n')\n"
            "except Exception as e:\n    print(type(e).__name__)\n"
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["RecipeError", "False", "False"]


def test_set_takes_negative_list_indices_and_adds_a_node_given_whole():
    recipe = load_recipe(str(ROOT / "recipes" / "digits_cnn.yaml"), ["model.layers[-1].Dense.units=7"])
    assert recipe.model.layers[-1] == {"Dense": {"units": 7, "activation": "softmax"}}
    assert recipe.problem(("model", "layers", 7, "Dense", "units"), "x").where == "--set model.layers[-1].Dense.units=7"
    graph = load_recipe(str(ROOT / "recipes" / "early_exit.yaml"),
                        ["model.graph.extra={Dense: {units: 10, activation: softmax}, from: flat3}",
                         "model.outputs=[exit1, exit2, exit3, extra]"])
    assert graph.graph.output_names == ("exit1", "exit2", "exit3", "extra")
