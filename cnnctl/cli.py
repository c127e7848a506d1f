"""The ``cnnctl`` command: each command parses its flags, makes one library call, prints.

Errors become exit codes here and nowhere else: the user's mistakes (RecipeError,
UserError) exit 2 with one message per problem; a failed job (CnnctlError) exits
1; Ctrl-C exits 130. TensorFlow is imported only by the commands that need it.
"""

from __future__ import annotations

import json
import os
import sys

import click

from cnnctl import __version__
from cnnctl._tfimport import import_tensorflow
from cnnctl.errors import CnnctlError, RecipeError
from cnnctl.recipe.schema import EXPORT_FORMATS

# TensorFlow's C++ start-up lines (CUDA probing, CPU features) are noise to a user;
# an explicit TF_CPP_MIN_LOG_LEVEL in the environment still wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SET_HELP = "Override a recipe value: dotted key path = YAML value, e.g. train.epochs=3 (repeatable)."
UNSAFE_HELP = ("Load a model that Keras safe mode refuses (a Lambda layer, a class neither Keras nor cnnctl "
               "provides): only for a file you trust, since loading it can run code stored in it.")


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
        except KeyboardInterrupt as exc:  # training's own (cnnctl.runstate.Interrupted) says where it stopped
            message = getattr(exc, "message", "interrupted; the checkpoints written so far are kept in the run")
            click.echo(f"\n{message}", err=True)
            ctx.exit(getattr(exc, "exit_code", 130))


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="cnnctl")
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
    from cnnctl.recipe import load_recipe

    if graph_file is not None and os.path.splitext(graph_file)[1].lower() not in (".svg", ".png"):
        raise click.BadParameter(f"{graph_file}: give a .svg or .png file name", param_hint="--graph")
    loaded = load_recipe(recipe, overrides)  # recipe errors surface here, before TensorFlow loads
    import_tensorflow()
    from cnnctl.model import build, check_report

    built = build(loaded)
    from cnnctl.train import check_training

    check_training(built.model, loaded)
    if loaded.data.augment and len(built.model.inputs) == 1 and None not in built.model.inputs[0].shape[1:]:
        from cnnctl.data.preprocess import augmentation_layers

        augmentation_layers(loaded, (0.0, 255.0), tuple(built.model.inputs[0].shape[1:]))
    report = check_report(built)
    if with_data:
        from cnnctl.data.report import data_report
        from cnnctl.train import prepare

        data = prepare(loaded).data  # every check train makes before it starts: shapes, classes, loss, weights
        if data.verify is not None:  # image files: decode every one now, not mid-epoch
            from cnnctl.data.files import report_bad

            report_bad(data.verify(), loaded.data.on_error)
        report["data"] = data_report(data, class_weighted=loaded.train.class_weight is not None)
        report["warnings"] += report["data"]["warnings"]
    for warning in report["warnings"]:
        click.echo(f"warning: {warning}", err=True)
    if graph_file is not None:
        from cnnctl.model.draw import render_graph

        render_graph(_graph_nodes(report), graph_file, title=report["name"])
        click.echo(f"graph: {graph_file}", err=True)
    if as_json:
        click.echo(json.dumps({"recipe": recipe, **report}, indent=2))
        return
    _print_check(report)


def _graph_nodes(report: dict) -> list[dict]:
    nodes = [{"name": i["name"], "class": "Input", "output_shape": i["shape"], "params": 0, "inputs": []}
             for i in report["inputs"]]
    return nodes + [{k: layer[k] for k in ("name", "class", "output_shape", "params", "inputs")}
                    for layer in report["layers"]]


def _print_check(report: dict) -> None:
    from cnnctl.model.report import format_count
    from cnnctl.tables import format_table

    graph = any(len(layer["inputs"]) != 1 or layer["shares"] for layer in report["layers"]) or len(
        report["inputs"]) > 1 or len(report["outputs"]) > 1
    inputs = ", ".join(f"{i['name']} {tuple(i['shape'])}" for i in report["inputs"])
    click.echo(f"{report['name']}: input {inputs}")
    headers = ["#", "layer", "class", "output shape", "params", "MACs"] + (["reads"] if graph else [])
    rows = []
    for i, layer in enumerate(report["layers"]):
        shape = "(" + ", ".join("None" if d is None else str(d) for d in layer["output_shape"]) + ")"
        params = f"shares {layer['shares']}" if layer["shares"] else f"{layer['params']:,}"
        row = [i, layer["name"], layer["class"], shape, params, format_count(layer["macs"])]
        rows.append(row + ([", ".join(layer["inputs"])] if graph else []))
    click.echo(format_table(headers, rows, "rlllrr"))
    click.echo(f"params: {report['params']:,} (trainable {report['trainable_params']:,}, "
               f"non-trainable {report['non_trainable_params']:,})")
    uncounted = f" (not counted: {', '.join(report['uncounted_layers'])})" if report["uncounted_layers"] else ""
    click.echo(f"MACs: {report['macs']:,}  FLOPs: {report['flops']:,} per example{uncounted}")
    if len(report["outputs"]) > 1:
        click.echo("outputs: " + ", ".join(f"{o['name']} {tuple(o['shape'])}" for o in report["outputs"]))
    field = report["receptive_field"]
    if field:
        size = "x".join(map(str, field["size"]))
        stride = "x".join(map(str, field["stride"]))
        click.echo(f"receptive field of {field['layer']}: {size} input pixels, stride {stride}")
    if "data" in report:
        from cnnctl.data.report import format_data_report

        click.echo("")
        for line in format_data_report(report["data"]):
            click.echo(line)


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
    from cnnctl.recipe import load_recipe

    if resume_run is None:
        if recipe is None:
            raise click.UsageError("give a RECIPE to train, or --resume RUN to continue a run")
        if force:
            raise click.BadParameter("--force goes with --resume RUN", param_hint="--force")
        if name is not None:
            overrides = (f"name={json.dumps(name)}", *overrides)
        loaded = load_recipe(recipe, overrides)
    else:
        from cnnctl.resume import resume_recipe
        from cnnctl.rundir import resolve_run

        if name is not None:
            raise click.BadParameter("a resumed run keeps its directory and name", param_hint="--name")
        run_dir = resolve_run(resume_run, runs_dir)
        loaded = resume_recipe(run_dir, recipe, overrides, force=force)
    import_tensorflow()
    if with_tensorboard:
        from cnnctl.tbserver import start

        os.makedirs(runs_dir, exist_ok=True)
        url, _ = start(runs_dir, port=None)
        click.echo(f"TensorBoard at {url} (it stops when training ends)", err=True)
    from cnnctl.summary import format_summary

    if resume_run is None:
        from cnnctl.train import train as train_recipe

        result = train_recipe(loaded, runs_dir, announce=lambda run: click.echo(
            f"training {loaded.name} in {run.path}", err=True))
    else:
        from cnnctl.train import resume

        result = resume(run_dir, loaded)
    click.echo(format_summary(result.metrics, str(result.run.path)))


@main.command(name="eval")
@click.argument("target", metavar="RUN|MODEL")
@click.option("--split", type=click.Choice(["train", "validation", "test"]), default="test", show_default=True)
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
    _must_exist(target, "run directory or model file")
    if data is not None:
        _must_exist(data, "recipe or folder (--data)")
    import_tensorflow()
    from cnnctl.evaluate import evaluate as evaluate_model
    from cnnctl.evaluate import format_eval

    result = evaluate_model(target, split, data, runs_dir=runs_dir, model_file="best.keras" if best else "model.keras",
                            unsafe=unsafe)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    for line in format_eval(result):
        click.echo(line)


@main.command()
@click.argument("target", metavar="RUN|MODEL")
@click.argument("inputs", metavar="FILES_OR_DIRS...", nargs=-1, required=True)
@click.option("--top-k", default=3, show_default=True, type=click.IntRange(min=1), help="Classes shown per input.")
@click.option("--runs-dir", default="runs", show_default=True, help="Where `latest` is looked for.")
@click.option("--best", is_flag=True, help="Use best.keras instead of model.keras.")
@click.option("--on-error", type=click.Choice(["fail", "skip"]), default="fail", show_default=True,
              help="An image that cannot be decoded stops predict (fail), or is left out with a warning (skip).")
@click.option("--json", "as_json", is_flag=True, help="Print the predictions as JSON on stdout.")
@click.option("--unsafe", is_flag=True, help=UNSAFE_HELP)
def predict(target: str, inputs: tuple[str, ...], top_k: int, runs_dir: str, best: bool, on_error: str,  # noqa: PLR0917
            as_json: bool, unsafe: bool) -> None:
    """Predict the classes of image files, folders of images, or .npy arrays with RUN's model (or a .keras
    MODEL), decoding and preprocessing them exactly as training did."""
    _must_exist(target, "run directory or model file")
    for given in inputs:
        _must_exist(given, "file or folder")
    import_tensorflow()
    from cnnctl.inference import load_model_or_run
    from cnnctl.predict import collect_inputs, format_prediction, predictions
    from cnnctl.predict import predict as predict_files

    model_file = "best.keras" if best else "model.keras"
    if as_json:
        click.echo(json.dumps(predict_files(target, list(inputs), top_k=top_k, runs_dir=runs_dir,
                                            model_file=model_file, on_error=on_error, unsafe=unsafe), indent=2))
        return
    loaded = load_model_or_run(target, runs_dir, model_file, unsafe=unsafe)
    for item in predictions(loaded, collect_inputs(list(inputs)), top_k=top_k, on_error=on_error):  # as they come
        for line in format_prediction(item):
            click.echo(line)


@main.command()
@click.argument("fmt", metavar="FORMAT", type=click.Choice(EXPORT_FORMATS))
@click.argument("run")
@click.option("--out", default=None, help="Where to write (default: RUN/export/ savedmodel, serving.keras, "
              "model.tflite, model_<quantize>.tflite or model.onnx).")
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
    if quantize is not None and fmt != "tflite":  # before TensorFlow loads: a flag mistake is told at once
        raise click.BadParameter(f"only tflite exports are quantized, not {fmt}", param_hint="--quantize")
    if fmt == "keras" and out is not None and not out.endswith(".keras"):
        raise click.BadParameter(f"{out}: a Keras export is a .keras file; give a name ending in .keras",
                                 param_hint="--out")
    _must_exist(run, "run directory")
    import_tensorflow()
    from cnnctl.export import export_run
    from cnnctl.inference import find_run
    from cnnctl.summary import format_export

    record = export_run(fmt, find_run(run, runs_dir), out=out, force=force, quantize=quantize, unsafe=unsafe)
    for line in format_export(record):
        click.echo(line)


@main.command()
@click.argument("runs_dir", metavar="[RUNS_DIR]", default="runs")
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="Port (default: 6006, or the next free one).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every one).")
def tensorboard(runs_dir: str, port: int | None, host: str) -> None:
    """Serve TensorBoard on RUNS_DIR (every run's logs) until Ctrl-C; print its address."""
    import_tensorflow()  # TensorBoard imports it; here its start-up notices are filtered out
    import signal
    import threading
    import time

    from cnnctl.tbserver import start

    # Ctrl-C (and a polite SIGTERM) stop the server, even when the shell started this command with SIGINT
    # ignored, as a non-interactive shell does for a background job: Python then installs no handler of its own.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    url, stop = start(runs_dir, port=port, host=host)
    click.echo(f"TensorBoard at {url} (Ctrl-C to stop)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        stopping = threading.Thread(target=stop, daemon=True)
        stopping.start()
        stopping.join(timeout=5)  # a request or TensorBoard's loader thread must not keep the server alive
        click.echo("TensorBoard stopped", err=True)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)  # Ctrl-C is how this command ends: exit 0, without waiting for TensorBoard's threads


@main.command()
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON on stdout.")
def recipes(name: str | None, as_json: bool) -> None:
    """List the built-in recipes, or print recipe NAME (`cnnctl recipes NAME > mine.yaml` starts a project)."""
    from cnnctl.catalogue import list_recipes, recipe_text

    if name is not None:
        click.echo(recipe_text(name), nl=False)
        return
    listed = list_recipes()
    if as_json:
        click.echo(json.dumps(listed, indent=2))
        return
    from cnnctl.tables import format_table

    click.echo(format_table(["recipe", "what it is"], [[r["name"], r["summary"]] for r in listed]))


def _must_exist(path: str, what: str) -> None:
    """A missing path is told at once, before TensorFlow loads (``latest`` is looked up later)."""
    if path != "latest" and not os.path.exists(path):
        from cnnctl.errors import UserError, closest_path

        raise UserError(f"{path}: no such {what}{closest_path(path)}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
