"""Every file and folder name in a run directory, in one place.

```
runs/<name>/<YYYYmmdd-HHMMSS>[-k]/
  recipe.yaml    the resolved recipe the run trains (overrides applied, defaults filled)
  data.json      the classes, split sizes and preprocessing eval, predict and export reuse
  model.keras    the final model
  best.keras     the best epoch by train.monitor
  history.csv    one row per epoch
  metrics.json   final metrics, status, timings, versions, exports
  .lock          held by the process writing into the run
  checkpoints/   what --resume reads (cnnctl.training.checkpoint)
  logs/          TensorBoard event files (logs/train, logs/validation, logs/eval); native.log: what
                 TensorFlow's C++ code wrote on stderr during exports (cnnctl._tfimport)
  export/        exported artifacts (cnnctl.exports)
  eval/          cnnctl eval's reports and confusion matrices
```
"""

from __future__ import annotations

import os
from pathlib import Path

RECIPE = "recipe.yaml"
DATA = "data.json"
MODEL = "model.keras"
BEST = "best.keras"
HISTORY = "history.csv"
METRICS = "metrics.json"
LOCK = ".lock"
FILES = (RECIPE, DATA, MODEL, BEST, HISTORY, METRICS, LOCK)

CHECKPOINTS = "checkpoints"
LOGS = "logs"
EXPORT = "export"
EVAL = "eval"
NATIVE_LOG = f"{LOGS}/native.log"
FOLDERS = (CHECKPOINTS, LOGS, EXPORT, EVAL)

# What training writes beside the recipe: a folder holding recipe.yaml and one of these is a run (a project
# folder often holds a recipe.yaml of its own).
TRAINING_MARKS = (DATA, METRICS, MODEL, CHECKPOINTS)


def is_temporary(name: str) -> bool:
    """A name cnnctl writes under before renaming (``.model.tmp-123.keras``): what a killed process leaves."""
    return name.startswith(".") and ".tmp-" in name


def temporary_path(path: Path, *, keep_suffix: bool = False) -> Path:
    """Where ``path`` is written before the rename that makes it whole: ``.NAME.tmp-PID`` beside it, or
    ``.STEM.tmp-PID.SUFFIX`` when the writer needs the suffix (Keras saves only to names ending .keras)."""
    if keep_suffix:
        return path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")
