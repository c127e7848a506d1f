"""The located YAML loader: numbers, duplicate keys, unsafe tags, positions, booleans, and documents built
to exhaust it (alias bombs, merges, nesting, huge numbers)."""

import time

import pytest

from cnnctl.errors import RecipeError
from cnnctl.recipe.yaml_loader import MAX_TEXT, format_path, load_yaml


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


@pytest.mark.parametrize("text", [
    "a: !!python/name:os.system\n",
    "a: !!python/object/new:os.system [echo hacked]\n",
    "a: !!python/object/apply:os.system {args: [echo hacked]}\n",
    "a: !!python/module:os\n",
    "a: !custom 3\n",
    "a: !!set {x, y}\n",
])
def test_every_object_tag_is_refused(text):
    with pytest.raises(RecipeError) as err:
        load_yaml(text, "r.yaml")
    (problem,) = err.value.problems
    assert problem.where == "r.yaml:1:4" and problem.path == "a"
    assert "is not allowed: a recipe holds data, never Python objects" in problem.message


def laughs(levels: int, width: int = 10) -> str:
    """'Billion laughs': each anchor is a list of ``width`` aliases of the one above (width**levels values)."""
    lines = ["l0: &l0 [" + ", ".join(["lol"] * width) + "]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_quickly():
    started = time.perf_counter()
    with pytest.raises(RecipeError) as err:
        load_yaml(laughs(9), "r.yaml")  # 10**10 values once expanded
    assert time.perf_counter() - started < 5
    (problem,) = err.value.problems
    assert problem.where.startswith("r.yaml:")
    assert "YAML aliases (*name) repeat more than 100,000 values" in problem.message
    assert "billion laughs" in problem.message


def test_aliases_within_the_bound_are_expanded():
    data = load_yaml(laughs(3)).data  # 10**4 values through 30 aliases
    assert len(data["l3"]) == 10 and data["l3"][9][9][9][9] == "lol"


def test_merge_bomb_stays_small():
    text = "m0: &m0 {x: 1, y: 2}\n" + "".join(
        f"m{i}: &m{i} {{<<: [{', '.join([f'*m{i - 1}'] * 10)}], k{i}: {i}}}\n" for i in range(1, 10))
    started = time.perf_counter()
    data = load_yaml(text).data
    assert time.perf_counter() - started < 2
    assert data["m9"] == {"x": 1, "y": 2, **{f"k{i}": i for i in range(1, 10)}}


def test_merge_order_own_keys_win_and_the_first_merged_mapping_wins():
    data = load_yaml("a: &a {x: 1, y: 1}\nb: &b {x: 2, z: 2}\nc: {<<: [*a, *b], y: 3}\n").data
    assert data["c"] == {"x": 1, "y": 3, "z": 2}


def test_alias_inside_its_own_anchor_is_refused():
    with pytest.raises(RecipeError) as err:
        load_yaml("a: &a [1, *a]\n", "r.yaml")
    assert "inside the anchor (&name) it refers to" in err.value.problems[0].message
    assert load_yaml("a: &a {x: 1, <<: *a}\n").data == {"a": {"x": 1}}  # a merge of itself adds nothing


@pytest.mark.parametrize("depth", [150, 5000])
def test_deep_nesting_is_refused(depth):
    with pytest.raises(RecipeError) as err:
        load_yaml("a: " + "[" * depth + "]" * depth + "\n", "r.yaml")
    assert "values nest more than 100 levels deep" in err.value.problems[0].message
    assert err.value.problems[0].where.startswith("r.yaml:1:")


@pytest.mark.parametrize(("text", "phrase"), [
    ("a: " + "9" * 5000, "cannot read '99999"),  # Python's 4300-digit limit for int()
    ("a: 2024-13-45", "cannot read '2024-13-45' as !!timestamp: month must be in 1..12"),
    ("a: !!int abc", "cannot read 'abc' as !!int"),
    ("a: !!float x", "cannot read 'x' as !!float"),
    ("a: !!bool maybe", "cannot read 'maybe' as !!bool"),
    ("a: {<<: 5}", "a merge (<<:) takes a mapping or a list of mappings"),
    ("a: {<<: [*b]}\nb: &b {}", "invalid YAML: found undefined alias"),
])
def test_unreadable_scalars_are_located_errors(text, phrase):
    with pytest.raises(RecipeError) as err:
        load_yaml(text + "\n", "r.yaml")
    assert err.value.problems[0].where.startswith("r.yaml:")
    assert phrase in err.value.problems[0].message


def test_long_text_is_refused():
    with pytest.raises(RecipeError) as err:
        load_yaml("a: 1\n" + "#" * MAX_TEXT, "r.yaml")
    assert "a recipe is at most" in err.value.problems[0].message


def test_boolean_words_are_kept_and_boolean_keys_are_names():
    doc = load_yaml("padding: no\nflags: [On, true]\nno: 1\nyes: {off: 2}\nwords: [y, n]\n")
    assert doc.data == {"padding": False, "flags": [True, True], "no": 1, "yes": {"off": 2}, "words": ["y", "n"]}
    assert doc.words == {("padding",): "no", ("flags", 0): "On", ("flags", 1): "true"}


def test_a_binary_file_given_as_a_recipe_is_named_so_at_its_first_control_character(tmp_path):
    # cnnctl 93d106b ended in a yaml.reader.ReaderError traceback, exit 1 (issue 16, item 8)
    from tests.conftest import invoke_fails

    (tmp_path / "g.yaml").write_bytes(b"\x00\x01\x02\xc3\xbf not yaml\n")
    assert "g.yaml:1:1: the text holds the control character '\\x00'" in invoke_fails("check", str(tmp_path / "g.yaml"))
    (tmp_path / "h.yaml").write_text("name: t\nmodel: x\x07\n")
    message = invoke_fails("check", str(tmp_path / "h.yaml"))
    assert "h.yaml:2:9: the text holds the control character '\\x07'" in message and "binary file" in message


@pytest.mark.parametrize(("text", "where", "words"), [
    ("name: t\nmodel:\n  input: [8]\n layers: [Flatten]\n", "r.yaml:4:2",
     "this line starts in column 2, where no key above it starts"),
    ("name: t\n  model:\n  input: [8]\n", "r.yaml:2:8",
     "this line is indented under a key whose value is on the same line"),
])
def test_indentation_mistakes_are_told_in_terms_of_keys_and_lines(text, where, words):
    # cnnctl 93d106b gave PyYAML's own "expected <block end>, but found '<block mapping start>'" (item 13)
    with pytest.raises(RecipeError) as err:
        load_yaml(text, "r.yaml")
    assert str(err.value).startswith(f"{where}: invalid YAML: ") and words in str(err.value)
    assert "<block" not in str(err.value)
