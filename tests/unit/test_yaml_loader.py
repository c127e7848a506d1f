"""The located YAML loader: numbers, duplicate keys, unsafe tags, positions."""

import pytest

from cnnctl.errors import RecipeError
from cnnctl.recipe.yaml_loader import format_path, load_yaml


def test_exponent_floats_are_numbers():
    data = load_yaml("a: 1e-3\nb: 2E+4\nc: -5e-1\nd: 1.0e-3\ne: .5\nf: 3\n").data
    assert data == {"a": 0.001, "b": 20000.0, "c": -0.5, "d": 0.001, "e": 0.5, "f": 3}
    assert isinstance(data["f"], int)


def test_strings_stay_strings():
    data = load_yaml("a: same\nb: '1e-3'\nc: 1e\nd: e5\n").data
    assert data == {"a": "same", "b": "1e-3", "c": "1e", "d": "e5"}


def test_duplicate_key_names_both_lines():
    with pytest.raises(RecipeError) as err:
        load_yaml("train:\n  epochs: 3\n  epochs: 5\n", "r.yaml")
    (problem,) = err.value.problems
    assert problem.where == "r.yaml:3:3"
    assert problem.path == "train.epochs"
    assert "duplicate key 'epochs'" in problem.message and "line 2" in problem.message


def test_python_tags_are_refused_with_location():
    with pytest.raises(RecipeError) as err:
        load_yaml("a: 1\nb: !!python/object/apply:os.system ['echo hacked']\n", "r.yaml")
    (problem,) = err.value.problems
    assert problem.where == "r.yaml:2:4"
    assert "!!python/object/apply:os.system" in problem.message and "not allowed" in problem.message


def test_syntax_error_is_located():
    with pytest.raises(RecipeError) as err:
        load_yaml("a: [1, 2\nb: 3\n", "r.yaml")
    assert err.value.problems[0].where.startswith("r.yaml:")
    assert "invalid YAML" in err.value.problems[0].message


def test_positions_of_values_and_keys():
    doc = load_yaml("model:\n  layers:\n    - Dense: {units: 3}\n", "r.yaml")
    assert doc.where(("model", "layers", 0, "Dense", "units")) == "r.yaml:3:22"
    assert doc.where(("model", "layers", 0, "Dense", "units"), key=True) == "r.yaml:3:15"
    # a path that is not in the file is located at its nearest ancestor
    assert doc.where(("model", "layers", 0, "Dense", "activation")) == "r.yaml:3:14"


def test_merge_keys_and_anchors_work():
    data = load_yaml("base: &b {filters: 8, padding: same}\nconv: {<<: *b, filters: 16}\n").data
    assert data["conv"] == {"filters": 16, "padding": "same"}


def test_format_path():
    assert format_path(("model", "layers", 3, "Conv2D", "padding")) == "model.layers[3].Conv2D.padding"
    assert format_path(()) == ""
