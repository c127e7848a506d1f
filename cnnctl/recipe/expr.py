"""``${...}`` parameters in blocks: substitution and a small, safe arithmetic.

Inside a block, a value ``$filters`` (or ``${filters}``) is replaced by the
block's parameter, keeping its type; ``"${filters * 4}"`` computes; ``"conv_${i}"`` interpolates into a
string. Expressions may use parameters, numbers, ``+ - * / // % **``, parentheses
and ``min``/``max``: nothing else can be named or called, so a recipe still runs no
code. Pure Python, no TensorFlow.
"""

from __future__ import annotations

import ast
import operator
import re
from typing import Any

_WHOLE = re.compile(r"^\$\{([^{}]*)\}$")
_BARE = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)$")  # $filters: no braces, so no quotes needed in {...}
_PART = re.compile(r"\$\{([^{}]*)\}")

_BINARY = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}
_CALLS = {"min": min, "max": max}


class ExprError(ValueError):
    """A parameter expression that cannot be evaluated; the message says why."""


MAX_TEXT = 500  # characters in one expression
MAX_BITS = 256  # of an integer result: 2**256 is far above any size, and ** cannot make a number that never ends


def evaluate(text: str, params: dict[str, Any]) -> Any:
    """The value of one expression (the text between ``${`` and ``}``)."""
    if len(text) > MAX_TEXT:
        raise ExprError(f"'${{{text[:40]}...}}' is {len(text):,} characters long; an expression is at most {MAX_TEXT}")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError):  # ValueError: an integer of more than 4300 digits
        raise ExprError(f"'${{{text}}}' is not an expression; write e.g. ${{filters}} or ${{filters * 4}}") from None
    except (RecursionError, MemoryError):
        raise ExprError(f"'${{{text}}}' nests too deeply") from None
    try:
        return _eval(tree.body, params, text)
    except RecursionError:
        raise ExprError(f"'${{{text}}}' nests too deeply") from None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _arithmetic(op: ast.operator, left: Any, right: Any, text: str) -> Any:
    """``left op right`` on numbers (``+`` also joins two strings), refusing results too large to compute."""
    if isinstance(op, ast.Add) and isinstance(left, str) and isinstance(right, str):
        return left + right
    if not (_number(left) and _number(right)):
        raise ExprError(f"'${{{text}}}': arithmetic is on numbers, got {left!r} and {right!r}")
    if isinstance(op, ast.Pow) and isinstance(left, int) and isinstance(right, int) and right > 0 and \
            abs(left) > 1 and right * (abs(left).bit_length() - 1) > MAX_BITS:
        raise ExprError(f"'${{{text}}}': {left} ** {right} is too large (more than {MAX_BITS} bits)")
    result = _BINARY[type(op)](left, right)
    if isinstance(result, int) and result.bit_length() > MAX_BITS:
        raise ExprError(f"'${{{text}}}': the result is too large (more than {MAX_BITS} bits)")
    if isinstance(result, complex):  # (-8) ** 0.5
        raise ExprError(f"'${{{text}}}': ({left}) ** {right} is not a real number")
    return result


def _eval(node: ast.AST, params: dict[str, Any], text: str) -> Any:
    if isinstance(node, ast.Constant) and (node.value is None or isinstance(node.value, (int, float, str))):
        return node.value
    if isinstance(node, ast.Name):
        if node.id not in params:
            from cnnctl.errors import did_you_mean

            known = ", ".join(sorted(params)) or "none"
            raise ExprError(f"unknown parameter '{node.id}'{did_you_mean(node.id, params)} (parameters: {known})")
        return params[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left, params, text), _eval(node.right, params, text)
        try:
            return _arithmetic(node.op, left, right, text)
        except (TypeError, ZeroDivisionError, OverflowError) as exc:
            raise ExprError(f"'${{{text}}}': {exc}") from None
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        operand = _eval(node.operand, params, text)
        if not _number(operand):
            raise ExprError(f"'${{{text}}}': arithmetic is on numbers, got {operand!r}")
        return _UNARY[type(node.op)](operand)
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _CALLS
            and node.args and not node.keywords and not any(isinstance(a, ast.Starred) for a in node.args)):
        values = [_eval(a, params, text) for a in node.args]
        if not all(_number(v) for v in values):
            raise ExprError(f"'${{{text}}}': {node.func.id} takes numbers, got {', '.join(map(repr, values))}")
        return _CALLS[node.func.id](*values)
    raise ExprError(f"'${{{text}}}' uses something other than parameters, numbers, arithmetic, min and max")


def substitute(value: Any, params: dict[str, Any], path: tuple, problems: list[tuple[tuple, str]]) -> Any:
    """``value`` with every ``${...}`` replaced; errors go to ``problems`` as (path, message)."""
    if isinstance(value, dict):
        return {k: substitute(v, params, (*path, k), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, params, (*path, i), problems) for i, v in enumerate(value)]
    if not isinstance(value, str) or "$" not in value:
        return value
    try:
        bare = _BARE.match(value)
        if bare:
            return evaluate(bare.group(1), params)
        whole = _WHOLE.match(value)
        if whole:
            return evaluate(whole.group(1), params)
        text = _PART.sub(lambda m: str(evaluate(m.group(1), params)), value)
        if "${" in text:  # an opening ${ left without its }
            start = text.index("${")
            raise ExprError(f"the ${{ in {value!r} is not closed: write ${{...}} with its closing brace, e.g. "
                            f"'{text[start:].rstrip('}')}}}'")
        return text
    except ExprError as exc:
        problems.append((path, str(exc)))
        return value
