"""The table of the built-in recipes in docs/recipes.md: each recipe's header words and its built model's figures.

``python -m cnnctl.model.zoo --write docs/recipes.md`` rebuilds every recipe (a few
minutes: it builds VGG-16) and rewrites the generated part; a test checks the
table still matches the recipes.
"""

from __future__ import annotations

from pathlib import Path

from cnnctl.model.build import build
from cnnctl.model.report import check_report
from cnnctl.recipe import load_recipe
from cnnctl.recipe.catalogue import BEGIN, COLUMNS, DOCS, END, header_field, list_recipes


def measure(path: Path) -> dict:
    """Build recipe ``path`` (TensorFlow): its parameters, multiply-adds per example and input shapes."""
    return figures(build(load_recipe(str(path))))


def figures(built) -> dict:
    """A built recipe's figures for the docs table (``built``: cnnctl.model.Built)."""
    report = check_report(built)
    inputs = ", ".join("x".join(str(d) for d in tensor.shape[1:]) for tensor in built.model.inputs)
    return {"params": report["params"], "macs": report["macs"], "uncounted": report["uncounted_layers"],
            "input": inputs}


def _si(n: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.0f}"


def table_row(entry: dict, measured: dict) -> list[str]:
    """One row of the docs table: the header's words and the built model's figures."""
    text = Path(entry["path"]).read_text(encoding="utf-8")
    macs = _si(measured["macs"]) + (" +?" if measured["uncounted"] else "")
    flops = _si(2 * measured["macs"]) + (" +?" if measured["uncounted"] else "")
    return [f"[`{entry['name']}`](../recipes/{entry['name']}.yaml)", entry["summary"], f"{measured['params']:,}",
            macs, flops, measured["input"], header_field(text, "Data") or "", header_field(text, "Measured") or ""]


def zoo_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def write_docs(path: Path = DOCS) -> None:
    """Rebuild every recipe and rewrite the generated table in ``path`` (a few minutes: it builds VGG-16)."""
    rows = [table_row(entry, measure(Path(entry["path"]))) for entry in list_recipes()]
    text = path.read_text(encoding="utf-8")
    head, rest = text.split(BEGIN, 1)
    path.write_text(head + BEGIN + "\n" + zoo_table(rows) + "\n" + END + rest.split(END, 1)[1], encoding="utf-8")


if __name__ == "__main__":  # python -m cnnctl.model.zoo --write docs/recipes.md
    import sys

    if sys.argv[1:2] != ["--write"] or len(sys.argv) != 3:
        sys.exit("usage: python -m cnnctl.model.zoo --write docs/recipes.md")
    write_docs(Path(sys.argv[2]))
