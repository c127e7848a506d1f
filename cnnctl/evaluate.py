"""RunDir -> metrics on one split of the run's own data."""

from __future__ import annotations

from cnnctl.data import Datasets, build_datasets
from cnnctl.errors import UserError
from cnnctl.model.saved import load_keras_model
from cnnctl.recipe import load_recipe
from cnnctl.rundir import RunDir
from cnnctl.train import compile_model, for_outputs


def run_datasets(run: RunDir, recipe) -> Datasets:
    """The run's data, normalized with the statistics stored at training time (data.json), if any."""
    stored = run.read_json("data.json") if (run / "data.json").exists() else {}
    return build_datasets(recipe, normalization=stored.get("normalization"))


def evaluate_run(run: RunDir, split: str = "test", model_file: str = "model.keras") -> dict:
    """Loss and the recipe's metrics of the run's model on ``split`` (train, validation, test)."""
    recipe = load_recipe(str(run / "recipe.yaml"))
    model = load_keras_model(run / model_file)
    data = run_datasets(run, recipe)
    if data.sizes[split] == 0:
        raise UserError(f"the {split} split of {run.path} is empty (data.split.{split} is 0)")
    compile_model(model, recipe)
    result = model.evaluate(for_outputs(data[split], len(model.outputs)), return_dict=True, verbose=0)
    return {"run": str(run.path), "model": model_file, "split": split, "examples": data.sizes[split],
            "metrics": {k: float(v) for k, v in result.items()}}
