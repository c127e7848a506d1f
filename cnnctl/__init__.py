"""cnnctl: YAML recipes in, trained, evaluated and exported Keras 3 models out.

```python
import cnnctl

result = cnnctl.train("recipes/digits_cnn.yaml", overrides=["train.epochs=2"])
print(cnnctl.evaluate(result.run).metrics["accuracy"])
```

The public API is this package's names (``cnnctl.api`` documents each); the
``cnnctl`` command is a thin layer over it (``cnnctl.cli``). docs/architecture.md
describes the packages, one per stage of the data flow.
"""

from cnnctl._version import __version__
from cnnctl.api import (
    ExportResult,
    check,
    evaluate,
    export,
    load_model,
    load_recipe,
    predict,
    resume,
    serve_tensorboard,
    train,
)
from cnnctl.errors import CnnctlError, RecipeError, UserError
from cnnctl.recipe import Recipe
from cnnctl.run import Run

# The result types live with the stages that make them, which import TensorFlow: loaded when first named.
_RESULTS = {"TrainResult": "cnnctl.training.trainer", "CheckReport": "cnnctl.training.check",
            "EvalResult": "cnnctl.serving.evaluate", "Predictions": "cnnctl.serving.predict",
            "RunModel": "cnnctl.serving.model"}


def __getattr__(name: str):
    if name in _RESULTS:
        import importlib

        return getattr(importlib.import_module(_RESULTS[name]), name)
    raise AttributeError(f"module 'cnnctl' has no attribute {name!r}")


__all__ = ["CheckReport", "CnnctlError", "EvalResult", "ExportResult", "Predictions", "Recipe", "RecipeError", "Run",
           "RunModel", "TrainResult", "UserError", "__version__", "check", "evaluate", "export", "load_model",
           "load_recipe", "predict", "resume", "serve_tensorboard", "train"]
