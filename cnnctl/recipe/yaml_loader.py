"""Safe YAML with positions: every value remembers the line and column it came from.

PyYAML's own behaviour is changed where it would surprise a recipe author silently:

- ``1e-3`` is a float (YAML 1.2); PyYAML's YAML 1.1 resolver reads it as a string.
- A key given twice in one mapping is an error naming both lines; PyYAML keeps the
  last one silently.
- A mapping key such as ``no`` or ``on`` stays the word (a key is a name); a boolean
  *value* stays a boolean, and ``Located.words`` keeps the word it was written as, so
  that an error about it can say "write 'no' in quotes".

Only the safe constructors are used: a tag that would build a Python object is
refused with its location. Nothing a document says can make loading slow or large:
the text, the nesting and the values that aliases repeat are bounded (``MAX_*``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from cnnctl.errors import Problem, RecipeError, first_line
from cnnctl.recipe.catalogue import builtin_hint

Path = tuple  # of str keys and int list indices

MAX_TEXT = 16 * 2**20  # characters in one recipe (or one --set value)
MAX_ALIAS_VALUES = 100_000  # values that YAML aliases may repeat
MAX_DEPTH = 100  # levels of nested mappings and lists


def format_path(path: Path) -> str:
    """``("model", "layers", 3, "Conv2D")`` -> ``model.layers[3].Conv2D``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads YAML 1.2 floats such as ``1e-3``."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.VERBOSE,
    ),
    list("-+0123456789."),
)


@dataclass
class Located:
    """A loaded YAML document and where each of its values came from."""

    data: Any
    source: str
    marks: dict = field(default_factory=dict)  # path -> "file:line:col" of the value
    key_marks: dict = field(default_factory=dict)  # path -> "file:line:col" of the key
    words: dict = field(default_factory=dict)  # path -> the text of a boolean as written: no, Off, yes...

    def where(self, path: Path, *, key: bool = False) -> str:
        """The location of ``path``, or of its nearest ancestor that has one."""
        path = tuple(path)
        while True:
            if key and path in self.key_marks:
                return self.key_marks[path]
            if path in self.marks:
                return self.marks[path]
            if not path:
                return self.source
            path = path[:-1]

    def problem(self, path: Path, message: str, *, key: bool = False) -> Problem:
        where = self.where(path, key=key)
        return Problem(where, format_path(path), message + self.override_note(path, where))

    def override_note(self, path: Path, where: str) -> str:
        """`` (set by --set K=V)`` when an override below ``path`` made the value what it is."""
        path = tuple(path)
        sets = sorted({m for p, m in self.marks.items() if p[: len(path)] == path and m.startswith("--set")})
        sets = [m for m in sets if m != where]
        return f" (changed by {', '.join(sets)})" if sets and len(path) > 1 else ""


def key_name(path: Path) -> str:
    """The key a value is given to, with its list indices: ``class_names[1]``, ``from[0]``."""
    last = max((i for i, part in enumerate(path) if isinstance(part, str)), default=0)
    return format_path(path[last:]) or "the recipe"


def boolean_message(value: bool, name: str, expected: str, word: str | None) -> str:
    """Why ``name: no`` is an error where ``expected`` (a string, a name) was wanted; ``word`` as written."""
    hint = f"write '{word}' in quotes if you meant the word" if word else "quote the word if you meant one"
    return (f"got the boolean {str(value).lower()}, but {name} is {expected}; YAML reads an unquoted "
            f"yes/no/on/off as a boolean: {hint}")


def _mark(source: str, node: yaml.Node) -> str:
    m = node.start_mark
    return f"{source}:{m.line + 1}:{m.column + 1}"


_PLAIN_TAGS = {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}
_MERGE = "tag:yaml.org,2002:merge"


class _Constructor:
    """Nodes -> plain data, recording marks; refuses alias bombs, self-containing aliases and Python tags.

    PyYAML's composer keeps an alias as a second reference to its anchor's node, so
    a few lines of nested anchors (``&a [x, x]``, ``&b [*a, *a]``, ...) expand to
    billions of values here. A node met again is counted, and construction stops once
    aliases have repeated more than ``MAX_ALIAS_VALUES`` values.
    """

    def __init__(self, loader: _Loader, doc: Located):
        self.loader, self.doc = loader, doc
        self.seen: set[int] = set()  # nodes constructed at least once
        self.repeated = 0  # values constructed again, through an alias
        self.active: set[int] = set()  # nodes being constructed: an alias to one of them never ends
        self.merged: dict[int, list] = {}  # mapping node -> its (key, key node, value node), merges resolved

    def value(self, node: yaml.Node, path: Path) -> Any:
        doc = self.doc
        where = _mark(doc.source, node)
        doc.marks[path] = where
        if id(node) in self.active or len(path) > MAX_DEPTH:
            what = ("this YAML alias (*name) is inside the anchor (&name) it refers to, so its value never ends"
                    if id(node) in self.active else f"values nest more than {MAX_DEPTH} levels deep")
            raise RecipeError(Problem(where, format_path(path[:4]) + ("..." if len(path) > 4 else ""), what))
        if id(node) in self.seen:
            self.repeated += 1
            if self.repeated > MAX_ALIAS_VALUES:
                raise RecipeError(Problem(where, format_path(path), (
                    f"YAML aliases (*name) repeat more than {MAX_ALIAS_VALUES:,} values of their anchors (&name); "
                    "anchors that use aliases of other anchors multiply like this ('billion laughs'): "
                    "write the values out, or repeat a block with repeat: N")))
        self.seen.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            value = self.scalar(node, path)
            if isinstance(value, bool):
                doc.words[path] = node.value
            return value
        if node.tag not in _PLAIN_TAGS:
            raise RecipeError(Problem(where, format_path(path), _tag_refused(node.tag)))
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.value(v, (*path, i)) for i, v in enumerate(node.value)]
            out = {}
            for key, key_node, value_node in self.pairs(node, path):
                doc.key_marks[(*path, key)] = _mark(doc.source, key_node)
                out[key] = self.value(value_node, (*path, key))
            return out
        finally:
            self.active.discard(id(node))

    def pairs(self, node: yaml.MappingNode, path: Path) -> list:
        """The mapping's entries with ``<<: *anchor`` merges resolved (its own keys win, then earlier merges)."""
        if id(node) in self.merged:
            return self.merged[id(node)]
        self.merged[id(node)] = []  # a merge that reaches this mapping again adds nothing
        own: dict = {}
        merged: dict = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                for source in self.merge_sources(value_node, path):
                    for entry in self.pairs(source, path):
                        merged.setdefault(entry[0], entry)
                continue
            key = self.key(key_node, path)
            if key in own:
                first = own[key][1].start_mark.line + 1
                raise RecipeError(Problem(_mark(self.doc.source, key_node), format_path((*path, key)),
                                          f"duplicate key '{key}' (first given at line {first}); "
                                          "YAML would keep only the last value, so give it once"))
            own[key] = (key, key_node, value_node)
        self.merged[id(node)] = result = list({**merged, **own}.values())
        return result

    def merge_sources(self, node: yaml.Node, path: Path) -> list:
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        for source in sources:
            if not isinstance(source, yaml.MappingNode):
                raise RecipeError(Problem(_mark(self.doc.source, source), format_path(path),
                                          "a merge (<<:) takes a mapping or a list of mappings, e.g. <<: *defaults"))
        return sources

    def key(self, node: yaml.Node, path: Path) -> Any:
        """A mapping key; ``no``/``on``/... as written, since a key is a name (YAML 1.2 reads them so too)."""
        if not isinstance(node, yaml.ScalarNode):
            raise RecipeError(Problem(_mark(self.doc.source, node), format_path(path),
                                      "a mapping key must be a plain name"))
        key = self.scalar(node, path)
        return node.value if isinstance(key, bool) else key

    def scalar(self, node: yaml.ScalarNode, path: Path) -> Any:
        where = _mark(self.doc.source, node)
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError:
            raise RecipeError(Problem(where, format_path(path), _tag_refused(node.tag))) from None
        except (ValueError, TypeError, KeyError, OverflowError) as exc:  # !!int abc, 2024-13-45, a 5000-digit number
            text = node.value if len(node.value) <= 40 else node.value[:40] + "..."
            raise RecipeError(Problem(where, format_path(path),
                                      f"cannot read {text!r} as {_short(node.tag)}: {first_line(exc)}")) from None


def _short(tag: str) -> str:
    return "!!" + tag[len("tag:yaml.org,2002:") :] if tag.startswith("tag:yaml.org,2002:") else tag


def _tag_refused(tag: str) -> str:
    return f"YAML tag '{_short(tag)}' is not allowed: a recipe holds data, never Python objects"


def load_yaml(text: str, source: str = "<string>") -> Located:
    """Parse one YAML document into plain data with the position of every value."""
    if len(text) > MAX_TEXT:
        raise RecipeError(Problem(source, "", f"is {len(text):,} characters long; a recipe is at most "
                                              f"{MAX_TEXT:,} (is it really a recipe?)"))
    try:
        loader = _Loader(text)  # the reader refuses control characters here, before parsing
    except yaml.reader.ReaderError as exc:
        raise RecipeError(_unreadable(text, source, exc)) from None
    try:
        node = loader.get_single_node()
    except yaml.reader.ReaderError as exc:
        raise RecipeError(_unreadable(text, source, exc)) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        what = exc.problem or exc.context or "invalid YAML"
        raise RecipeError(Problem(where, "", f"invalid YAML: {_in_recipe_terms(what, mark)}")) from None
    except yaml.YAMLError as exc:
        raise RecipeError(Problem(source, "", f"invalid YAML: {exc}")) from None
    except RecursionError:  # the composer recurses once per level of nesting
        mark = loader.get_mark()
        raise RecipeError(Problem(f"{source}:{mark.line + 1}:{mark.column + 1}", "",
                                  f"values nest more than {MAX_DEPTH} levels deep")) from None
    finally:
        loader.dispose()
    doc = Located(data=None, source=source)
    if node is not None:
        doc.data = _Constructor(loader, doc).value(node, ())
    return doc


def _unreadable(text: str, source: str, exc: yaml.reader.ReaderError) -> Problem:
    """A character YAML does not allow (a NUL, a control character): where, and what it suggests."""
    before = text[: exc.position]
    line, column = before.count("\n") + 1, exc.position - (before.rfind("\n") + 1) + 1
    char = exc.character if isinstance(exc.character, str) else chr(exc.character)
    return Problem(f"{source}:{line}:{column}", "", f"the text holds the control character {char!r}, which YAML "
                   "does not allow: is this a binary file rather than a recipe? A recipe is YAML text")


def _in_recipe_terms(what: str, mark: Any) -> str:
    """PyYAML's own words for the two indentation mistakes recipes show most, said in terms of keys and lines."""
    if what.startswith("expected <block end>, but found '<block mapping start>'"):
        return (f"this line starts in column {mark.column + 1}, where no key above it starts: the keys of one "
                "mapping must start in the same column, so indent it as far as the key it belongs beside")
    if what == "mapping values are not allowed here":
        return ("a 'key:' where a value was expected: either this line is indented under a key whose value is on "
                "the same line (check the indentation of the line and the one above), or a value holds ': ' and "
                "needs quotes")
    return what


def load_yaml_file(path: str) -> Located:
    """Read and parse a YAML file; a missing or unreadable file is a user error."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise RecipeError(Problem(path, "", f"no such file{builtin_hint(path)}")) from None
    except IsADirectoryError:
        raise RecipeError(Problem(path, "", "is a directory, expected a YAML recipe file")) from None
    except UnicodeDecodeError:
        raise RecipeError(Problem(path, "", "is not UTF-8 text; is it really a YAML recipe?")) from None
    except OSError as exc:
        raise RecipeError(Problem(path, "", f"cannot read: {exc.strerror}")) from None
    return load_yaml(text, source=path)
