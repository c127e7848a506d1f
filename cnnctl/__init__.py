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
    load_recipe,
    predict,
    resume,
    serve_tensorboard,
    train,
)
from cnnctl.errors import CnnctlError, RecipeError, UserError
from cnnctl.recipe import Recipe
from cnnctl.run import Run

__all__ = ["CnnctlError", "ExportResult", "Recipe", "RecipeError", "Run", "UserError", "__version__", "check",
           "evaluate", "export", "load_recipe", "predict", "resume", "serve_tensorboard", "train"]
