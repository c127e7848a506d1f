"""The summary ``cnnctl train`` prints on stdout when a run ends, from its metrics.json.

```
split       loss    accuracy
----------  ------  --------
train       0.0702    0.9801
validation  0.1203    0.9611
test        0.1350    0.9556
last epoch: 12 of 40, stopped early by EarlyStopping (train and validation above)
best epoch: 9, val_accuracy 0.9667 (best.keras)
time: 12.3 s, 5,123 images/s
learning rate: 0.0001 at the end
run: runs/digits_cnn/20250101-120000
```

The first line is the table's header and the last is ``run: <directory>``, so a
script can find both.
"""

from __future__ import annotations

from typing import Any

from cnnctl.exports.report import checked_text
from cnnctl.tables import format_table


def retry_command(record: dict[str, Any], run: str) -> str:
    """The command that writes one of a recipe's exports again, from its record in metrics.json."""
    quantize = f" --quantize {record['quantize']}" if record.get("quantize") else ""
    return f"cnnctl export {record['format']} {run}{quantize}"


def format_summary(metrics: dict[str, Any], run: str) -> str:
    """The final table of a run and the lines below it (see the module's docstring)."""
    splits = [s for s in ("train", "validation", "test") if metrics.get(s)]
    names = list(dict.fromkeys(k for s in splits for k in metrics[s]))
    names = sorted(names, key=lambda n: not n.endswith("loss"))  # losses first, then in Keras's order (stable)
    rows = [[s] + [metrics[s].get(n, "") for n in names] for s in splits]
    lines = [format_table(["split", *names], rows, "l" + "r" * len(names))]

    training = metrics.get("training", {})
    planned = training.get("epochs_planned", metrics["epochs"])
    last = f"last epoch: {metrics['epochs']} of {planned}"
    if training.get("stopped_by"):
        last += f", stopped early by {training['stopped_by']}"
    lines.append(last + " (train and validation above)")
    best = metrics.get("best")
    if best:
        lines.append(f"best epoch: {best['epoch']}, {best['monitor']} {best['value']:.4f} (best.keras)")
    lines.append(f"time: {metrics['train_seconds']:.1f} s, {metrics['images_per_sec']:,.0f} images/s")
    if training.get("learning_rate") is not None:
        lines.append(f"learning rate: {training['learning_rate']:.3g} at the end")
    compute = []
    if training.get("mixed_precision", "float32") != "float32":
        compute.append(f"dtype policy {training['mixed_precision']}")
    if training.get("jit_compile"):
        compute.append("XLA")
    if training.get("steps_per_execution", 1) > 1:
        compute.append(f"{training['steps_per_execution']} steps per execution")
    if compute:
        lines.append("compute: " + ", ".join(compute))
    for label, record in metrics.get("exports", {}).items():
        if "error" in record:
            lines.append(f"export {label}: FAILED: {record['error']} (retry: {retry_command(record, run)})")
        else:
            lines.append(f"export {label}: {record['path']} (vs Keras: {checked_text(record)})")
    lines.append(f"run: {run}")
    return "\n".join(lines)
