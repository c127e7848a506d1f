"""The built-in recipes (``recipes/*.yaml``): a list to browse, and each one's text to start a project from.

```sh
cnnctl recipes                      # name and one line about each
cnnctl recipes lenet5 > mine.yaml   # the recipe, with its header comment, to edit
```

Each recipe opens with a comment: ``# NAME: what it is (the paper)...``; the first
sentence of that line is its summary. No TensorFlow is imported here.
"""

from __future__ import annotations

from pathlib import Path

from cnnctl.errors import UserError, did_you_mean

RECIPES = Path(__file__).resolve().parents[1] / "recipes"  # the repository's catalogue (an editable install)


def recipes_dir() -> Path:
    if not RECIPES.is_dir():
        raise UserError(f"the built-in recipes are not installed ({RECIPES} is missing); they ship with the "
                        "repository: install cnnctl with `pip install -e .` from a clone")
    return RECIPES


def list_recipes() -> list[dict[str, str]]:
    """One entry per recipe: its name and a one-line summary from its header comment."""
    return [{"name": path.stem, "summary": summary(path.read_text(encoding="utf-8"), path.stem), "path": str(path)}
            for path in sorted(recipes_dir().glob("*.yaml"))]


def summary(text: str, name: str, width: int = 80) -> str:
    """The header comment's opening words without ``NAME:``: up to its first parenthesis or sentence end."""
    header = []
    for line in text.splitlines():
        if not line.startswith("#") or not line.lstrip("#").strip():
            break  # the header ends at its first empty comment line, or at the YAML
        header.append(line.lstrip("#").strip())
    sentence = " ".join(header)
    if sentence.startswith(f"{name}:"):
        sentence = sentence[len(name) + 1:].strip()
    sentence = sentence.split(". ")[0].split(" (")[0].rstrip(",;:")
    return sentence if len(sentence) <= width else sentence[: width - 3].rstrip() + "..."


def recipe_text(name: str) -> str:
    """The text of recipe ``name`` (its file, comments included)."""
    path = recipes_dir() / f"{name.removesuffix('.yaml')}.yaml"
    if not path.is_file():
        names = [p.stem for p in recipes_dir().glob("*.yaml")]
        raise UserError(f"no built-in recipe '{name}'{did_you_mean(name, names)}; `cnnctl recipes` lists them")
    return path.read_text(encoding="utf-8")
