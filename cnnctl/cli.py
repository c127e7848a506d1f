"""The ``cnnctl`` command: each command parses its flags, makes one call of the Python API (``cnnctl.api``), prints.

Errors become exit codes here and nowhere else: the user's mistakes (RecipeError,
UserError) exit 2 with one message per problem; a failed job (CnnctlError) exits
1; Ctrl-C exits 130. TensorFlow is imported only by the API calls that need it.
"""

from __future__ import annotations

import json
import os
import sys

import click

import cnnctl
from cnnctl.api import export_problem, graph_problem, name_problem
from cnnctl.errors import CnnctlError, RecipeError
from cnnctl.registry import FORMATS

# TensorFlow's C++ start-up lines (CUDA probing, CPU features) are noise to a user;
# an explicit TF_CPP_MIN_LOG_LEVEL in the environment still wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SET_HELP = "Override a recipe value: dotted key path = YAML value, e.g. train.epochs=3 (repeatable)."
UNSAFE_HELP = ("Load a model that Keras safe mode refuses (a Lambda layer, a class neither Keras nor cnnctl "
               "provides): only for a file you trust, since loading it can run code stored in it.")


class _FormatChoice(click.Choice):
    """Click's Choice of the registered export formats, read from the registry when first needed (not for --help)."""

    def __init__(self) -> None:  # Click's own would read the choices now
        self.case_sensitive = True

    @property
    def choices(self) -> tuple[str, ...]:
        return tuple(FORMATS.names())


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except RecipeError as exc:
            for problem in exc.problems:
                click.echo(f"error: {problem}", err=True)
            ctx.exit(exc.exit_code)
        except CnnctlError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt as exc:  # training's own (Interrupted, Stopped) say where it stopped, what is kept
            message = getattr(exc, "message", None) or _INTERRUPTED.get(ctx.invoked_subcommand, "interrupted")
            click.echo(f"\n{message}", err=True)
            ctx.exit(getattr(exc, "exit_code", 130))


# What Ctrl-C leaves behind, by command, when the command itself has nothing more precise to say. Every file cnnctl
# writes is written whole (a temporary, then renamed), so an interrupted write leaves the earlier file.
_INTERRUPTED = {
    "check": "check interrupted; nothing was written",
    "eval": "eval interrupted; nothing was written (its report is written when it has measured every example)",
    "export": "export interrupted; nothing was written (an export is renamed into place only once checked; an "
              "earlier export is kept)",
    "predict": "predict interrupted; the rows printed above are complete, the remaining inputs were not predicted",
    "train": "train interrupted before the run was created; nothing was written",
}


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(cnnctl.__version__, "--version", "-V", prog_name="cnnctl")
def main() -> None:
    """Turn a YAML recipe into a trained, evaluated and exported Keras model."""


@main.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@click.option("--graph", "graph_file", type=click.Path(dir_okay=False), default=None,
              help="Also draw the layer graph to this file (.svg or .png).")
@click.option("--data", "with_data", is_flag=True,
              help="Also load the data: split sizes, class counts and balance, element shape; check it fits the model.")
def check(recipe: str, overrides: tuple[str, ...], as_json: bool, graph_file: str | None, with_data: bool) -> None:
    """Validate RECIPE and explain its model: shapes, parameters, MACs/FLOPs, receptive field (and data)."""
    problem = graph_problem(graph_file)
    if problem:
        raise click.BadParameter(problem, param_hint="--graph")
    report = cnnctl.check(recipe, overrides, data=with_data, graph=graph_file)
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    if graph_file is not None:
        click.echo(f"graph: {graph_file}", err=True)
    if as_json:
        click.echo(json.dumps({"recipe": recipe, **report.to_dict()}, indent=2))
        return
    from cnnctl.training.check import format_check

    _echo_lines(format_check(report))


@main.command()
@click.argument("recipe", type=click.Path(dir_okay=False), required=False)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--runs-dir", default="runs", show_default=True, help="Folder that holds the runs.")
@click.option("--name", default=None, help="Run name (default: the recipe's name).")
@click.option("--resume", "resume_run", default=None, metavar="RUN",
              help="Continue RUN (a run directory, or `latest`) from its newest checkpoint, with the recipe stored "
                   "in it; --set train.epochs=N trains a finished run further.")
@click.option("--force", is_flag=True, help="With --resume: accept changes to the run's recipe besides train.epochs.")
@click.option("--tensorboard", "with_tensorboard", is_flag=True,
              help="Also serve TensorBoard on the runs folder while training (port 6006, or the next free one).")
def train(recipe: str | None, overrides: tuple[str, ...], runs_dir: str, name: str | None,  # noqa: PLR0917
          resume_run: str | None, force: bool, with_tensorboard: bool) -> None:
    """Train RECIPE into a new run directory, or continue one (--resume RUN); print a summary: metrics, best
    epoch, time, the run. Ctrl-C or SIGTERM stops after the current step with a checkpoint (exit 130/143)."""
    if resume_run is None and recipe is None:
        raise click.UsageError("give a RECIPE to train, or --resume RUN to continue a run")
    if resume_run is None and force:
        raise click.BadParameter("--force goes with --resume RUN", param_hint="--force")
    if resume_run is not None and name is not None:
        raise click.BadParameter("a resumed run keeps its directory and name", param_hint="--name")
    problem = name_problem(name)
    if problem:
        raise click.BadParameter(problem, param_hint="--name")
    served = (lambda url: click.echo(f"TensorBoard at {url} (it stops when training ends)", err=True)) \
        if with_tensorboard else None
    if resume_run is None:
        result = cnnctl.train(recipe, overrides, runs_dir=runs_dir, name=name, tensorboard=served,
                              announce=lambda run: click.echo(f"training {run.name} in {run.path}", err=True))
    else:
        result = cnnctl.resume(resume_run, recipe, overrides, runs_dir=runs_dir, force=force, tensorboard=served)
    from cnnctl.training.summary import format_summary

    click.echo(format_summary(result.metrics, str(result.run.path)))
    if result.failed_exports:  # the run is complete; the summary says how to write each missing export
        raise CnnctlError(f"{', '.join(result.failed_exports)}: not exported (see the summary); the run itself is "
                          "complete")


@main.command(name="eval")
@click.argument("target", metavar="RUN|MODEL")
@click.option("--split", type=click.Choice(["train", "validation", "test"]), default="test", show_default=True,
              help="Which split to evaluate on: of the run's data, of --data RECIPE's, or the split's folder of "
                   "--data DIR when it has train/validation/test folders (else the whole folder).")
@click.option("--data", default=None, metavar="RECIPE_OR_DIR",
              help="Evaluate on this recipe's data, or on a folder of class folders, instead of the run's own.")
@click.option("--runs-dir", default="runs", show_default=True, help="Where `latest` is looked for.")
@click.option("--best", is_flag=True, help="Evaluate best.keras instead of model.keras.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON on stdout.")
@click.option("--unsafe", is_flag=True, help=UNSAFE_HELP)
def evaluate(target: str, split: str, data: str | None, runs_dir: str, best: bool, as_json: bool,  # noqa: PLR0917
             unsafe: bool) -> None:
    """Evaluate RUN (a run directory, or `latest`) or a .keras MODEL: metrics, per-class precision, recall
    and F1, and the confusion matrix (printed; PNG in RUN/eval/ and in TensorBoard)."""
    result = cnnctl.evaluate(target, split=split, data=data, best=best, runs_dir=runs_dir, unsafe=unsafe)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    from cnnctl.serving.evaluate import format_eval

    _echo_lines(format_eval(result))


@main.command()
@click.argument("target", metavar="RUN|MODEL")
@click.argument("inputs", metavar="FILES_OR_DIRS...", nargs=-1, required=True)
@click.option("--top-k", default=3, show_default=True, type=click.IntRange(min=1), help="Classes shown per input.")
@click.option("--runs-dir", default="runs", show_default=True, help="Where `latest` is looked for.")
@click.option("--best", is_flag=True, help="Use best.keras instead of model.keras.")
@click.option("--on-error", type=click.Choice(["fail", "skip"]), default="fail", show_default=True,
              help="An image that cannot be decoded, or a .npy array of the wrong shape, stops predict (fail), or is "
                   "left out with a warning naming it (skip).")
@click.option("--json", "as_json", is_flag=True, help="Print the predictions as JSON on stdout.")
@click.option("--unsafe", is_flag=True, help=UNSAFE_HELP)
def predict(target: str, inputs: tuple[str, ...], top_k: int, runs_dir: str, best: bool, on_error: str,  # noqa: PLR0917
            as_json: bool, unsafe: bool) -> None:
    """Predict the classes of image files, folders of images, or .npy arrays with RUN's model (or a .keras
    MODEL), decoding and preprocessing them exactly as training did."""
    predictions = cnnctl.predict(target, inputs, top_k=top_k, best=best, runs_dir=runs_dir, on_error=on_error,
                                 unsafe=unsafe)
    if as_json:
        click.echo(json.dumps(predictions.to_dict(), indent=2))
        return
    from cnnctl.serving.predict import format_predictions

    for line in format_predictions(predictions):  # printed as they come
        click.echo(line)


@main.command()
@click.argument("fmt", metavar="FORMAT", type=_FormatChoice())
@click.argument("run")
@click.option("--out", default=None, help="Where to write (default: RUN/export/ savedmodel, serving.keras, "
              "model.tflite, model_<quantize>.tflite or model.onnx); a folder (ending in /) takes the file under that "
              "default name.")
@click.option("--force", is_flag=True, help="Replace an earlier export at the target path.")
@click.option("--quantize", type=click.Choice(["dynamic", "float16", "int8"]), default=None,
              help="tflite only: quantize weights (dynamic, float16) or weights and activations (int8, calibrated "
                   "on training examples).")
@click.option("--runs-dir", default="runs", show_default=True, help="Where `latest` is looked for.")
@click.option("--unsafe", is_flag=True, help=UNSAFE_HELP)
def export(fmt: str, run: str, out: str | None, force: bool, quantize: str | None, runs_dir: str,  # noqa: PLR0917
           unsafe: bool) -> None:
    """Export RUN's model with its preprocessing as FORMAT, reload it with its own runtime and compare it with
    Keras on held-out data; record the result in RUN/metrics.json."""
    problem = export_problem(fmt, out, quantize)  # before TensorFlow loads: a flag mistake is told at once
    if problem:
        raise click.BadParameter(problem[1], param_hint=f"--{problem[0]}")
    result = cnnctl.export(fmt, run, out=out, force=force, quantize=quantize, runs_dir=runs_dir, unsafe=unsafe)
    from cnnctl.exports.report import format_export

    _echo_lines(format_export(result.record))


@main.command()
@click.argument("runs_dir", metavar="[RUNS_DIR]", default="runs")
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="Port (default: 6006, or the next free one).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every one).")
def tensorboard(runs_dir: str, port: int | None, host: str) -> None:
    """Serve TensorBoard on RUNS_DIR (every run's logs) until Ctrl-C; print its address."""
    cnnctl.serve_tensorboard(runs_dir, port=port, host=host,
                             announce=lambda url: click.echo(f"TensorBoard at {url} (Ctrl-C to stop)"))
    click.echo("TensorBoard stopped", err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # Ctrl-C is how this command ends: exit 0, without waiting for TensorBoard's threads


@main.command()
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True,
              help="Print the list (with NAME: the recipe's entry and its text) as JSON on stdout.")
def recipes(name: str | None, as_json: bool) -> None:
    """List the built-in recipes, or print recipe NAME (`cnnctl recipes NAME > mine.yaml` starts a project)."""
    from cnnctl.recipe.catalogue import list_recipes, recipe_entry, recipe_text

    if name is not None:
        if as_json:
            click.echo(json.dumps(recipe_entry(name), indent=2))
        else:
            click.echo(recipe_text(name), nl=False)
        return
    listed = list_recipes()
    if as_json:
        click.echo(json.dumps(listed, indent=2))
        return
    from cnnctl.tables import format_table

    click.echo(format_table(["recipe", "what it is"], [[r["name"], r["summary"]] for r in listed]))


def _echo_lines(lines: list[str]) -> None:
    for line in lines:
        click.echo(line)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
