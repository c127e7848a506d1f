"""`cnnctl check` on generated recipes (hypothesis): whatever the text, exit 0, or exit 2 with ``error:``
messages; never a traceback, a hang or a crash.

Three sources of recipes: YAML-ish text and structures built from recipe keys and awkward values; the
recipes in recipes/ with one to three mutations (a key dropped, renamed or added, a value replaced by a
wrong type, a huge or negative number, a boolean, null, an unquoted yes/no/on/off, a nested list or map,
an unknown layer, a bad ``from:``); and those recipes with random ``--set`` overrides. Every run is
in-process (CliRunner) and reproducible (``derandomize``). Bugs found so far are in REGRESSIONS below.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnctl.cli import main
from cnnctl.recipe.yaml_loader import format_path
from tests.conftest import RECIPES

# Recipes whose valid mutants build in well under a second; the large ones (vgg16, inception_v3, ...) take
# seconds each and are mutated in a test of their own with fewer examples.
LARGE = {"alexnet", "vgg11", "vgg16", "googlenet", "inception_v3", "resnet50", "mobilenet_v2"}
SMALL_TEXTS = {p.stem: p.read_text(encoding="utf-8") for p in RECIPES if p.stem not in LARGE}
LARGE_TEXTS = {p.stem: p.read_text(encoding="utf-8") for p in RECIPES if p.stem in LARGE}

KEYS = ["name", "seed", "model", "input", "inputs", "layers", "graph", "blocks", "outputs", "from", "share",
        "repeat", "params", "data", "train", "log", "export", "units", "filters", "kernel_size", "strides",
        "padding", "activation", "rate", "source", "shape", "classes", "count", "batch_size", "split",
        "validation", "test", "epochs", "optimizer", "loss", "metrics", "augment", "callbacks", "tensorboard",
        "mixed_precision", "monitor", "mode", "class_weight", "dtype", "layer", "adjacency", "<<", "Dense",
        "Conv2D", "Flatten", "BatchNormalization", "Add", "Concatenate", "image", "input_images"]
WORDS = ["no", "off", "yes", "on", "On", "NO", "y", "n", "same", "valid", "causal", "relu", "softmax", "image",
         "input", "Dense", "Conv2D", "Flatten", "ReLU", "Add", "Lambda", "TFSMLayer", "os.system",
         "keras.layers.Dense", "GraphConv", "LSTM", "adam", "Adam", "sparse_categorical_crossentropy", "accuracy",
         "val_loss", "auto", "none", "memory", "grid", "required", "digits", "synthetic", "keras:mnist",
         "image_dir", "tflite", "onnx", "balanced", "1/255", "$filters", "${filters * 4}", "${x", "${1/0}",
         "${2 ** 2 ** 2 ** 2 ** 2}", "1e-3", "1e999", ".nan", "", " ", "~", "null", "-", "[", "{", "'",
         "&a", "*a", "!!python/name:os.system", "2024-13-45", "0x1F", "0o17", "1_000", "12:30:45"]
NUMBERS = [0, 1, -1, 2, 3, 8, 10, 255, -8, 2**31, 2**31 - 1, 2**32, 2**53 + 1, 2**63, 2**64, 10**12, 10**30,
           -(10**12), 10**100, 0.0, -0.0, 0.5, 1.5, -0.5, 1e-3, 1e300, -1e300]
YAML_TEXT = "abcdexyz019:-_. \n\t[]{},&*!|>'\"#%@`?<=~$^"

scalars = st.one_of(
    st.none(), st.booleans(), st.sampled_from(NUMBERS), st.sampled_from(WORDS),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=10),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6),
                                                                 inner, max_size=4),
    max_leaves=12,
)
BOOLEAN_WORDS = ["no", "off", "yes", "on", "Off", "YES"]
UNQUOTED = "UNQUOTED_BOOLEAN_WORD"  # replaced, after dumping, by an unquoted yes/no/on/off


def dump(data: object) -> str:
    try:
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=10**6)
    except (yaml.YAMLError, RecursionError):
        return "name: t\n"


def flow(value: object) -> str:
    """``value`` as a one-line YAML flow value, as a --set gives it."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6, allow_unicode=True).strip()
    return text.removesuffix("\n...").replace("\n", " ")


def paths_of(data: object, path: tuple = ()) -> list[tuple]:
    """Every key path in ``data`` (``()`` for the whole)."""
    out = [path]
    if isinstance(data, dict):
        for key, value in data.items():
            out += paths_of(value, (*path, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            out += paths_of(value, (*path, i))
    return out


def parent_and_key(data: object, path: tuple) -> tuple[object, object]:
    node = data
    for part in path[:-1]:
        node = node[part]
    return node, path[-1]


@st.composite
def mutated(draw, texts: dict[str, str]) -> tuple[str, list[str]]:
    """A recipe of ``texts`` with one to three mutations, and zero to two --set overrides: (text, sets)."""
    name = draw(st.sampled_from(sorted(texts)))
    data = yaml.safe_load(texts[name])
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = [p for p in paths_of(data) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        node, key = parent_and_key(data, path)
        op = draw(st.sampled_from(["drop", "replace", "replace", "word", "rename", "add", "unknown_layer",
                                   "bad_from", "huge", "negative", "nest", "duplicate"]))
        if op == "drop":
            del node[key]
        elif op == "replace":
            node[key] = draw(values)
        elif op == "word":
            node[key] = UNQUOTED
        elif op == "rename" and isinstance(node, dict):
            node[draw(st.sampled_from(KEYS) | st.text(min_size=1, max_size=6))] = node.pop(key)
        elif op == "add" and isinstance(node, dict):
            node[draw(st.sampled_from(KEYS))] = draw(values)
        elif op == "unknown_layer" and isinstance(node[key], dict) and len(node[key]) == 1:
            node[key] = {draw(st.sampled_from(["Conv3x3", "Dens", "os.system", "Lambda", "InputLayer", "Add"])):
                         next(iter(node[key].values()))}
        elif op == "bad_from":
            node[key] = draw(st.sampled_from(["nowhere", ["image", "nowhere"], [], "image", 3, True]))
        elif op == "huge" and isinstance(node[key], int | float) and not isinstance(node[key], bool):
            node[key] = draw(st.sampled_from([10**6, 10**9, 10**12, 2**63, 10**30]))
        elif op == "negative" and isinstance(node[key], int | float) and not isinstance(node[key], bool):
            node[key] = -abs(node[key]) - draw(st.integers(min_value=0, max_value=3))
        elif op == "nest":
            node[key] = draw(st.sampled_from([[node[key]], {"x": node[key]}, [[node[key]]]]))
        elif op == "duplicate" and isinstance(node, list):
            node.insert(key, node[key])
    text = dump(data)
    while UNQUOTED in text:
        text = text.replace(UNQUOTED, draw(st.sampled_from(BOOLEAN_WORDS)), 1)
    sets = []
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        paths = [p for p in paths_of(data) if p and isinstance(p[0], str)]
        target = format_path(draw(st.sampled_from(paths))) if paths else "name"
        if draw(st.booleans()):
            target += draw(st.sampled_from([".units", "[0]", "[99]", ".Conv2D.padding", ".x.y", "..", "[-1]"]))
        raw = draw(st.sampled_from(BOOLEAN_WORDS) | values.map(flow) | st.text(alphabet=YAML_TEXT, max_size=12))
        sets.append(f"{target}={raw}" if draw(st.integers(0, 9)) else raw)  # sometimes no '=' at all
    return text, sets


def yamlish() -> st.SearchStrategy[str]:
    """Text that is YAML (of recipe-like structures) or nearly YAML."""
    structure = st.dictionaries(st.sampled_from(KEYS), values, max_size=5).map(dump)
    model = st.fixed_dictionaries({"model": st.fixed_dictionaries(
        {"input": st.lists(st.sampled_from([8, 1, 0, -1, None, 10**9]) | scalars, max_size=4)},
        optional={"layers": st.lists(st.sampled_from(WORDS) | st.dictionaries(st.sampled_from(KEYS), values,
                                                                              max_size=2), max_size=4),
                  "graph": st.dictionaries(st.sampled_from(KEYS), values, max_size=3)})}).map(dump)
    raw = st.text(alphabet=YAML_TEXT, max_size=80)
    return st.one_of(structure, model, raw, st.lists(st.sampled_from(
        ["name: t", "model:", "  input: [8, 8, 1]", "  layers:", "    - Flatten", "    - Dense: {units: 10}",
         "    - *a", "    - &a Flatten", "  <<: *a", "train: &a {epochs: 1}", "data: {<<: *a}", "  graph:",
         "    x: {Dense: {units: 3}, from: image}", "- no", "  padding: no", "!!python/name:os.system",
         "    - {Conv2D: {filters: 8, kernel_size: 3, padding: off}}", "\t", "---", "..."]), max_size=8)
        .map("\n".join))


def assert_checks_cleanly(text: str, sets: list[str], path: Path) -> None:
    """`cnnctl check` on ``text``: exit 0, or exit 2 with only ``error:`` lines; never a traceback."""
    path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(main, ["check", str(path), *(a for s in sets for a in ("--set", s))])
    shown = f"\n--- recipe ---\n{text}\n--- sets --- {sets}\n--- stderr ---\n{result.stderr}"
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        f"escaped: {result.exception!r}{shown}"
    assert "Traceback" not in result.output, shown
    assert result.exit_code in (0, 2), shown
    if result.exit_code == 2:
        errors = [line for line in result.stderr.splitlines() if line.strip()]
        assert errors and errors[0].startswith("error: "), shown


def fuzz(examples: int) -> settings:
    """Reproducible runs of ``examples`` recipes. To explore: CNNCTL_FUZZ_SCALE=10 runs ten times as many,
    CNNCTL_FUZZ_RANDOM=1 draws new ones each run."""
    scale = float(os.environ.get("CNNCTL_FUZZ_SCALE", "1"))
    random = bool(os.environ.get("CNNCTL_FUZZ_RANDOM"))
    return settings(max_examples=max(1, int(examples * scale)), derandomize=not random, deadline=None, database=None,
                    print_blob=True, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                            HealthCheck.function_scoped_fixture])


@pytest.mark.slow
@fuzz(400)
@given(text=yamlish())
def test_fuzz_yamlish_text(tmp_path, text):
    assert_checks_cleanly(text, [], tmp_path / "recipe.yaml")


@pytest.mark.slow
@fuzz(300)
@given(recipe=mutated(SMALL_TEXTS))
def test_fuzz_mutated_recipes(tmp_path, recipe):
    assert_checks_cleanly(*recipe, tmp_path / "recipe.yaml")


@pytest.mark.slow
@fuzz(24)
@given(recipe=mutated(LARGE_TEXTS))
def test_fuzz_mutated_large_recipes(tmp_path, recipe):
    assert_checks_cleanly(*recipe, tmp_path / "recipe.yaml")


def chain_of(*layers: str) -> str:
    return "name: t\nmodel:\n  input: [8, 8, 1]\n  layers:\n" + "".join(f"    - {x}\n" for x in (*layers, "Flatten"))


# Examples the fuzzer found, each a bug fixed since (see the commit that added it): (recipe, --set values).
REGRESSIONS: dict[str, tuple[str, list[str]]] = {
    # name: null on a chain layer: Keras named it max_pooling2d, the recipe stage named the next one so too,
    # and keras.Model's ValueError escaped as a traceback
    "layer_name_null": ("name: t\nmodel:\n  input: [8, 8, 1]\n  blocks:\n"
                        "    conv: {layers: [{Conv2D: {filters: 4, kernel_size: 3, padding: same}}]}\n"
                        "  layers: [conv, {MaxPooling2D: {name: null}}, conv, MaxPooling2D, Flatten]\n", []),
    # a layer's name given as a list: "unhashable type: 'list'" from the recipe stage's table of names
    # a string as an {l1, l2} shorthand's factor: keras.regularizers.L1L2's ValueError escaped
    "l2_a_string": (chain_of("Conv2D: {filters: 8, kernel_size: 3, kernel_regularizer: {l2: abc}}"), []),
    # an initializer that fails on the weight's shape when the deferred weights are initialized: a traceback,
    # and Keras's list of variables left half-initialized, so every later build in the process failed too
    "identity_initializer_on_a_kernel": (chain_of("Conv2D: {filters: 8, kernel_size: 3, "
                                                  "kernel_initializer: Identity}"), []),
    "a_recipe_after_it": (chain_of("Conv2D: {filters: 8, kernel_size: 3}"), []),
    "layer_name_a_list": ("name: t\nmodel:\n  input: [8, 8, 1]\n  layers: [Flatten, {Dense: {units: 3, name: []}}]\n",
                          []),
}


@pytest.mark.parametrize(("text", "sets"), REGRESSIONS.values(), ids=REGRESSIONS)
def test_fuzzer_findings(tmp_path, text, sets):
    assert_checks_cleanly(text, sets, tmp_path / "recipe.yaml")
