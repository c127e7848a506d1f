"""One exception hierarchy; the CLI maps it to exit codes.

- ``RecipeError`` and other ``UserError``s: the user's input is wrong -> exit 2.
- ``CnnctlError``: the job itself failed (diverged, an export mismatch) -> exit 1.

Anything else escaping the library is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol


class CnnctlError(Exception):
    """The job failed through no fault of the input: exit 1."""

    exit_code = 1


class UserError(CnnctlError):
    """The user's input (flags, paths, files) is wrong: exit 2."""

    exit_code = 2


class Stopped(KeyboardInterrupt):
    """Ctrl-C where cnnctl can say what it stopped and what is kept (exit 130). A KeyboardInterrupt, so that no
    ``except Exception`` swallows it."""

    def __init__(self, message: str, exit_code: int = 130):
        super().__init__(message)
        self.message, self.exit_code = message, exit_code


@dataclass(frozen=True)
class Problem:
    """One located problem in a recipe."""

    where: str  # "recipe.yaml:12:5" or "--set train.epochs=3"
    path: str  # "model.layers[3].Conv2D.padding"; "" for the whole document
    message: str

    def __str__(self) -> str:
        prefix = f"{self.where}: " if self.where else ""
        path = f"{self.path}: " if self.path else ""
        return f"{prefix}{path}{self.message}"


class Locator(Protocol):
    """What says where a key path of a recipe was written: a ``Recipe``, or one of its sections (``recipe.data``),
    whose paths are relative to it."""

    def problem(self, path: tuple, message: str, *, key: bool = False) -> Problem: ...

    def boolean_problem(self, path: tuple, value: bool, expected: str) -> Problem: ...


class RecipeError(UserError):
    """One or more problems in a recipe, each with its location."""

    def __init__(self, problems: Iterable[Problem] | Problem):
        if isinstance(problems, Problem):
            problems = [problems]
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (Keras's are long), or its type's name."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or an empty string."""
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def closest_path(path: str) -> str:
    """`` (did you mean 'x'?)`` for a mistyped file or folder, written as the user wrote the path.

    The first part of ``path`` that does not exist is compared with the names in
    the folder above it: ``shpes/one/a.png`` suggests ``shapes/one/a.png``.
    """
    import os
    from pathlib import Path

    parts = Path(path).parts
    missing = next((i for i in range(len(parts)) if not Path(*parts[: i + 1]).exists()), None)
    if missing is None:
        return ""
    i = missing
    parent = Path(*parts[:i]) if i else Path(".")
    try:
        names = os.listdir(parent)
    except OSError:
        return ""
    close = difflib.get_close_matches(parts[i], names, n=1, cutoff=0.6)
    if close:
        return f" (did you mean '{Path(*parts[:i], close[0], *parts[i + 1:])}'?)"
    return f" (the nearest existing folder is {parent})" if i else ""
