"""The confusion matrix: counts, per-class metrics, and a picture of it (Pillow only).

```python
cm = confusion_matrix(y_true, y_pred, num_classes=10)   # rows: true class, columns: predicted
rows = per_class(cm, class_names)                        # [{name, precision, recall, f1, support}, ...]
write_png(render_confusion(cm, class_names, title="validation, epoch 3"), run / "confusion.png")  # pictures
```

The metrics follow scikit-learn's definitions (``zero_division=0``: 0.0 where a
class was never predicted or never present, and no warning).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cnnctl.pictures import font

_MAX_GRID = 800  # pixels of the matrix itself, whatever the number of classes
_MAX_CELL = 48
_NUMBERS_UP_TO = 30  # classes; beyond that the cells are too small for counts
_NAME_CHARS = 14


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """``cm[i, j]``: examples of true class ``i`` predicted as class ``j`` (int64, num_classes x num_classes).

    Labels outside ``0..num_classes-1`` are an error (ValueError), never silently dropped.
    """
    t = np.asarray(y_true).astype(np.int64).ravel()
    p = np.asarray(y_pred).astype(np.int64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"{t.size} true labels but {p.size} predictions")
    for name, labels in (("true label", t), ("prediction", p)):
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"a {name} is outside 0..{num_classes - 1}: {labels.min()}..{labels.max()}")
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes).astype(np.int64)


def _prf(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-class precision, recall, F1 and support, 0.0 where a ratio is 0/0."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    predicted = cm.sum(axis=0)
    support = cm.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return precision, recall, f1, support.astype(np.int64)


def per_class(cm: np.ndarray, class_names: Sequence[str]) -> list[dict]:
    """One row per class: name, precision, recall, f1 (floats, 0.0 where undefined) and support (int)."""
    precision, recall, f1, support = _prf(cm)
    return [{"name": str(name), "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(class_names, precision, recall, f1, support, strict=True)]


def summary(cm: np.ndarray) -> dict:
    """Accuracy and the macro and weighted averages of precision, recall and F1 (scikit-learn's definitions).

    Macro averages with equal weight the classes that occur, as a label or as a
    prediction (scikit-learn's default), so a data set holding only some of the
    model's classes is not marked down for the others; weighted averages by support.
    """
    cm = np.asarray(cm)
    total = int(cm.sum())
    occurs = (cm.sum(axis=0) + cm.sum(axis=1)) > 0
    precision, recall, f1, support = (v[occurs] for v in _prf(cm))
    weights = support / total if total else np.zeros_like(precision)
    out: dict = {"accuracy": float(np.trace(cm) / total) if total else 0.0, "examples": total}
    for average, w in (("macro", None), ("weighted", weights)):
        for metric, values in (("precision", precision), ("recall", recall), ("f1", f1)):
            value = float(values.mean()) if w is None else float((values * w).sum())
            out[f"{average}_{metric}"] = value if values.size else 0.0
    return out


def _short(name: str, chars: int = _NAME_CHARS) -> str:
    name = str(name)
    return name if len(name) <= chars else name[: chars - 1] + "…"


def _colours(fraction: np.ndarray) -> np.ndarray:
    """0..1 -> RGB from white to dark blue (uint8, shape + (3,))."""
    low = np.array([247, 251, 255], np.float64)
    high = np.array([8, 48, 107], np.float64)
    f = np.clip(fraction, 0.0, 1.0)[..., None]
    return np.rint(low + (high - low) * f).astype(np.uint8)


def render_confusion(cm: np.ndarray, class_names: Sequence[str], title: str = "") -> np.ndarray:
    """The matrix as an RGB image (uint8, H x W x 3): rows true class, columns predicted.

    Each cell is coloured by its share of the row (the row-normalised matrix, so
    rare classes show as clearly as common ones) and shows its count, up to 30
    classes; beyond that the counts are dropped and, once cells are smaller than
    a legible font, so are the class names. Names are cut to 14 characters.
    """
    from PIL import Image, ImageDraw

    cm = np.asarray(cm, dtype=np.int64)
    n = cm.shape[0]
    if cm.shape != (n, n) or n == 0:
        raise ValueError(f"a confusion matrix is square and non-empty, got shape {cm.shape}")
    names = [_short(c) for c in class_names] if len(class_names) == n else [str(i) for i in range(n)]
    cell = max(2, min(_MAX_CELL, _MAX_GRID // n))
    numbers = n <= _NUMBERS_UP_TO
    label_size = min(14, cell - 2)
    labels = label_size >= 8
    label_font = font(label_size) if labels else None
    title_font = font(14)

    def width(text: str, f) -> int:
        box = f.getbbox(text)
        return box[2] - box[0]

    name_px = max(width(s, label_font) for s in names) + 8 if labels else 0
    axis_px = 18  # the "true" / "predicted" captions
    title_px = 22 if title else 0
    left = axis_px + name_px
    top = title_px + axis_px + name_px
    grid = cell * n
    title_w = width(title, title_font) + 12 if title else 0
    image = Image.new("RGB", (max(left + grid + 6, title_w), top + grid + 6), (255, 255, 255))
    draw = ImageDraw.Draw(image)

    rows = cm.sum(axis=1, keepdims=True)
    fraction = np.divide(cm, rows, out=np.zeros(cm.shape, np.float64), where=rows > 0)
    colours = _colours(fraction)
    block = np.repeat(np.repeat(colours, cell, axis=0), cell, axis=1)
    image.paste(Image.fromarray(block, "RGB"), (left, top))
    if cell >= 6:  # thin lines between cells
        for k in range(n + 1):
            draw.line([(left + k * cell, top), (left + k * cell, top + grid)], fill=(200, 200, 200))
            draw.line([(left, top + k * cell), (left + grid, top + k * cell)], fill=(200, 200, 200))

    if numbers:
        for i in range(n):
            for j in range(n):
                text = str(cm[i, j])
                size = label_size
                count_font = font(size)
                while size > 6 and width(text, count_font) > cell - 4:  # a wide count gets a smaller font
                    size -= 1
                    count_font = font(size)
                ink = (255, 255, 255) if fraction[i, j] > 0.5 else (30, 30, 30)
                draw.text((left + j * cell + cell / 2, top + i * cell + cell / 2), text, fill=ink,
                          font=count_font, anchor="mm")

    if title:
        centre = left + grid / 2 if title_w <= 2 * min(left + grid / 2, image.width - left - grid / 2) else \
            image.width / 2
        draw.text((centre, 3), title, fill=(0, 0, 0), font=title_font, anchor="ma")
    draw.text((left + grid / 2, title_px + 2), "predicted", fill=(0, 0, 0), font=title_font, anchor="ma")
    caption = Image.new("RGB", (grid, axis_px), (255, 255, 255))
    ImageDraw.Draw(caption).text((grid / 2, 2), "true", fill=(0, 0, 0), font=title_font, anchor="ma")
    image.paste(caption.rotate(90, expand=True), (0, top))
    if labels:
        for k, name in enumerate(names):
            draw.text((left - 4, top + k * cell + cell / 2), name, fill=(0, 0, 0), font=label_font, anchor="rm")
        # column names: written across a strip, which turned a quarter left reads bottom-up over each column
        flat = Image.new("RGB", (name_px, grid), (255, 255, 255))
        flat_draw = ImageDraw.Draw(flat)
        for k, name in enumerate(names):
            flat_draw.text((4, k * cell + cell / 2), name, fill=(0, 0, 0), font=label_font, anchor="lm")
        image.paste(flat.rotate(90, expand=True), (left, title_px + axis_px))
    return np.asarray(image, dtype=np.uint8)
