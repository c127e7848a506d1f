"""The docs say what the code does: generated tables are fresh, examples build."""

import re
from pathlib import Path

import pytest

from cnnctl.model import build
from cnnctl.recipe import load_recipe_text
from cnnctl.recipe.reference import BEGIN, END, reference_markdown

DOCS = Path(__file__).parents[1] / "docs" / "recipe.md"


def test_generated_reference_is_up_to_date():
    text = DOCS.read_text()
    generated = text.split(BEGIN, 1)[1].split(END, 1)[0]
    assert generated.strip() == reference_markdown().strip(), (
        "docs/recipe.md is stale: run python -m cnnctl.recipe.reference --write docs/recipe.md")


README = DOCS.parents[1] / "README.md"
MODEL_EXAMPLES = [block for doc in (DOCS, README) for block in re.findall(r"```yaml\n(.*?)```", doc.read_text(), re.S)
                  if block.startswith("model:")]


@pytest.mark.parametrize("example", MODEL_EXAMPLES, ids=[f"example{i}" for i in range(len(MODEL_EXAMPLES))])
def test_model_examples_in_the_docs_build(example):
    built = build(load_recipe_text("name: doc\n" + example, "docs/recipe.md"))
    assert built.model.count_params() > 0


def test_the_docs_have_model_examples():
    assert len(MODEL_EXAMPLES) >= 4


def test_the_reference_marks_required_only_what_a_recipe_must_give():
    """A top-level key the reference calls required is refused when missing; the others load without it."""
    from cnnctl.errors import RecipeError

    table = reference_markdown().split("### ", 2)[1]
    rows = dict(re.findall(r"^\| `(\w+)` \| [^|]+ \| ([^|]+) \|", table, re.M))
    minimal = {"name": "name: doc\n", "model": "model: {input: [4], layers: [Flatten]}\n"}
    for key in minimal:
        text = "".join(v for k, v in minimal.items() if k != key)
        if rows[key].strip() == "required":
            with pytest.raises(RecipeError):
                load_recipe_text(text, "doc.yaml")
        else:
            load_recipe_text(text, "doc.yaml")
    assert rows["name"].strip() == "the file's name"
