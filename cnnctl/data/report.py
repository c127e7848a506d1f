"""What ``cnnctl check --data`` says about a recipe's data: sizes, classes, balance, element shape."""

from __future__ import annotations

import numpy as np

from cnnctl.data.pipeline import SPLITS, Datasets

IMBALANCE_WARNING = 3.0  # largest / smallest class in the training split


def data_report(data: Datasets, class_weighted: bool = False) -> dict:
    """A JSON-ready summary of ``data`` and the warnings it deserves."""
    train = data.class_counts["train"]
    present = train[train > 0]
    imbalance = float(present.max() / present.min()) if len(present) else None
    warnings = []
    missing = [data.class_names[i] for i, n in enumerate(train) if n == 0]
    if missing:
        warnings.append(f"the training split has no examples of class {', '.join(missing[:5])}"
                        f"{' ...' if len(missing) > 5 else ''}")
    if imbalance is not None and imbalance >= IMBALANCE_WARNING and not class_weighted:
        big = data.class_names[int(train.argmax())]
        small = data.class_names[int(np.flatnonzero(train == present.min())[0])]
        warnings.append(f"the training classes are imbalanced: '{big}' has {imbalance:.1f}x the examples of "
                        f"'{small}'; consider train.class_weight: balanced")
    for split in ("validation", "test"):
        if 0 < data.sizes[split] < data.num_classes:
            warnings.append(f"the {split} split has {data.sizes[split]} examples for {data.num_classes} classes")
    spec = data.splits["train"].element_spec
    return {
        "source": data.source,
        "sizes": dict(data.sizes),
        "classes": data.class_names,
        "class_counts": {split: data.class_counts[split].tolist() for split in SPLITS},
        "imbalance": imbalance,
        "stored": {"shape": list(data.stored_shape), "dtype": data.stored_dtype},
        "element": {"shape": list(data.element_shape), "dtype": spec[0].dtype.name},
        "label": {"dtype": spec[1].dtype.name},
        "augment": data.augment,
        "normalization": data.normalization,
        "warnings": warnings,
    }


def format_data_report(report: dict, max_classes: int = 20) -> list[str]:
    """The report as the lines ``cnnctl check --data`` prints."""
    from cnnctl.tables import format_table

    lines = [f"data: {report['source']}"]
    classes = report["classes"]
    headers = ["split", "examples"]
    shown = classes if len(classes) <= max_classes else []
    headers += shown if shown else ["smallest class", "largest class"]
    rows = []
    for split in SPLITS:
        counts = report["class_counts"][split]
        row = [split, report["sizes"][split]]
        row += counts if shown else [min(counts), max(counts)]
        rows.append(row)
    lines.append(format_table(headers, rows, "l" + "r" * (len(headers) - 1)))
    imbalance = f", largest/smallest training class {report['imbalance']:.2f}" if report["imbalance"] else ""
    lines.append(f"classes: {len(classes)}{imbalance}")
    norm = report["normalization"]
    how = {"rescale": f"rescaled by {norm.get('rescale', 0):.6g}", "none": "not normalized",
           "standardize": "standardized per channel (training split's mean and variance)"}[norm["normalize"]]
    augment = f"augmented by {', '.join(report['augment'])} (training only), " if report["augment"] else ""
    stored = report["stored"]
    lines.append(f"examples: stored {tuple(stored['shape'])} {stored['dtype']}; the model gets "
                 f"{tuple(report['element']['shape'])} {report['element']['dtype']}, {augment}{how}; "
                 f"labels {report['label']['dtype']} class indices")
    return lines
