"""``csv``: a table with a header row, a label column and numeric feature columns (or flattened pixels + reshape)."""

from __future__ import annotations

import csv
import sys
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

from cnnctl.data.sources.base import (
    DataError,
    Examples,
    Source,
    array_examples,
    eight_bit,
    encode_labels,
    reshaped,
    split_paths,
)
from cnnctl.errors import UserError, did_you_mean
from cnnctl.registry import SOURCES

if TYPE_CHECKING:
    from cnnctl.recipe.data_spec import DataSpec


def load_csv(spec: DataSpec, seed: int) -> Examples:
    """A table with a header row: a label column and numeric feature columns (or flattened pixels + reshape).

    With ``reshape``, whole-number pixels in 0..255 are kept as 8-bit images (so
    ``normalize: auto`` rescales them); without it the columns are float32 features.
    """
    parts = {split: _read_csv(path, spec) for split, path in split_paths(spec).items()}
    labels, names = encode_labels({split: y for split, (_, y) in parts.items()}, spec)
    parts = {split: (reshaped(x, spec, split), labels[split]) for split, (x, _) in parts.items()}
    if spec.reshape is not None and all(eight_bit(x) for x, _ in parts.values()):
        parts = {split: (x.astype("uint8"), y) for split, (x, y) in parts.items()}  # pixels: rescaled by auto
        _warn_if_faint(spec, min(int(x.min()) for x, _ in parts.values()), max(int(x.max()) for x, _ in parts.values()))
    rows = sum(len(y) for _, y in parts.values())
    return array_examples(parts, names, f"csv {spec.path} ({rows} rows)")


FAINT = 0.25  # the largest value the model sees, below which 8-bit was the wrong guess


def _warn_if_faint(spec: DataSpec, low: int, high: int) -> None:
    """Whole numbers taken as 8-bit pixels (0..255) but far below 255 (such as scikit-learn's digits, 0..16):
    rescaled by 1/255 the model would see almost nothing; say so, and which key sets the scale."""
    if spec.normalize not in ("auto", "rescale") or abs(high * spec.rescale) >= FAINT:
        return
    where = spec.path if isinstance(spec.path, str) else ", ".join(spec.path.values())
    print(f"warning: {where} (data.path): pixels are whole numbers {low}..{high}, taken as 8-bit (0..255) and "
          f"multiplied by data.rescale {_fraction(spec.rescale)} (data.normalize: {spec.normalize}): the model sees "
          f"{low * spec.rescale:.3g}..{high * spec.rescale:.3g}; if {high} is the largest value they can take, set "
          f"data.rescale: 1/{high} (or data.normalize: none to keep them as they are)", file=sys.stderr)


def _fraction(value: float) -> str:
    """``0.00392156`` -> ``1/255``; a factor that is no simple fraction as a number."""
    near = Fraction(value).limit_denominator(10_000)
    return str(near) if abs(float(near) - value) <= 1e-6 * abs(value) else f"{value:.6g}"


def _read_csv(path: str, spec: DataSpec) -> tuple[np.ndarray, np.ndarray]:
    """Features (float32) and labels (text) of a csv, a row at a time: memory for the arrays, not the text."""
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        header = [h.strip() for h in next(reader, [])]
        y_name = spec.y or "label"
        if header and y_name not in header:
            raise DataError(("y",), f"{path} has no column '{y_name}'{did_you_mean(y_name, header)}; its columns "
                            f"are {', '.join(header[:12])}{' ...' if len(header) > 12 else ''} (name it with data.y)")
        x_names = spec.x if isinstance(spec.x, list) else [spec.x] if spec.x else [h for h in header if h != y_name]
        for name in x_names:
            if name not in header:
                raise DataError(("x",), f"{path} has no column '{name}'{did_you_mean(name, header)}")
        y_col, x_cols = (header.index(y_name), [header.index(n) for n in x_names]) if header else (0, [])
        labels = []
        for line, row in enumerate(reader, start=2):
            if len(row) != len(header):
                raise UserError(f"{path}:{line}: {len(row)} fields where the header has {len(header)}")
            labels.append(row[y_col])
    if not labels:
        raise UserError(f"{path} has no data rows; a csv source needs a header row and one row per example")
    try:  # NumPy's C parser: fast, and memory for the array only
        x = np.loadtxt(path, delimiter=",", skiprows=1, usecols=x_cols, dtype="float32", quotechar='"', ndmin=2)
    except ValueError:
        _raise_bad_cell(path, header, x_cols)
        raise
    return x, np.array(labels)


def _raise_bad_cell(path: str, header: list[str], columns: list[int]) -> None:
    with open(path, newline="") as handle:
        for line, row in enumerate(csv.reader(handle), start=1):
            bad = next((c for c in columns if not _is_number(row[c])), None) if line > 1 else None
            if bad is not None:
                raise UserError(f"{path}:{line}: column '{header[bad]}' is '{row[bad]}', not a number; "
                                "feature columns must be numeric (list them with data.x)")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


CSV = SOURCES.register(Source(name="csv", keys=("path", "x", "y", "reshape", "class_names"), required=("path",),
                              load=load_csv))
