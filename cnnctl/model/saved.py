"""Loading ``.keras`` models without trusting them: cnnctl reads the archive first, then Keras in safe mode.

A ``.keras`` file is a zip archive whose ``config.json`` says which classes to
build, with what arguments; loading it builds them. A file from elsewhere could
make that run code: a Lambda layer carries Python bytecode, a TFSMLayer loads a
SavedModel from a path it names, and a ``module`` that is not Keras's made
earlier Keras releases import it (CVE-2025-1550 and the safe-mode bypasses after
it; pyproject.toml names them and sets the Keras floor above them all).

So before Keras sees the file, cnnctl reads ``config.json`` as plain JSON and
walks every object in it: each must be a class or function of Keras's own modules
(not one of the layers that run code, ``CODE_LAYERS``) or one that cnnctl
registered. Anything else is refused with one message naming it, before a byte of
it is deserialized; ``unsafe=True`` (``--unsafe``: a file the user trusts) loads
it anyway with ``safe_mode=False``, after a warning. Legacy HDF5 files (``.h5``)
are refused outright: Keras's safe mode does not apply to them (CVE-2025-9905).
The optimizer's ``compile_config`` is not read: cnnctl loads models uncompiled.

cnnctl's own layers (GraphConv, SqueezeExcite, LocalResponseNormalization) are
registered with Keras when this module is imported, so cnnctl always loads models
that use them; ``keras.saving.load_model`` outside cnnctl needs ``import
cnnctl.layers`` first (``import cnnctl`` alone imports no Keras). A layer saved as
cnnctl's that this cnnctl does not have (a model from another cnnctl version) is
told as such, and a class Keras cannot locate under ``--unsafe`` is named.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import keras

import cnnctl.model.custom_layers  # noqa: F401 (registers cnnctl's layers, so models that use them reload)
from cnnctl.errors import UserError, first_line
from cnnctl.filekinds import describe_file, not_a_model

# Keras layers that run code, or load files, when they are built from a config.
CODE_LAYERS = {
    "Lambda": "its function is Python bytecode stored in the file",
    "TFSMLayer": "it loads and runs a TensorFlow SavedModel from a path the file names",
    "JaxLayer": "it wraps a JAX function stored in the file",
    "FlaxLayer": "it wraps a Flax module stored in the file",
    "TorchModuleWrapper": "it unpickles a PyTorch module stored in the file",
}
# Objects Keras serializes as values, not classes: nothing is imported or called to rebuild them.
_VALUES = {"__keras_tensor__", "__tensor__", "__numpy__", "__bytes__", "__ellipsis__", "__slice__"}
# Where Keras looks up a function saved with module "builtins" (its built-in activations, losses, ...).
_FUNCTION_FAMILIES = ("activations", "constraints", "initializers", "losses", "metrics", "optimizers",
                      "regularizers", "ops")
_CONFIG_LIMIT = 256 * 2**20  # bytes of config.json: a model's is kilobytes to a few megabytes
_UNSAFE_HINT = "if you trust the file (you made it, or know who did), give --unsafe to load it anyway"


@dataclass(frozen=True)
class Untrusted:
    """An object in a model's config.json that cnnctl will not build in safe mode, and why."""

    layer: str | None  # the name of the layer it is (or is in), if it has one
    what: str  # "Lambda layer 'doubler' (keras.layers.Lambda)"
    why: str

    def __str__(self) -> str:
        return f"{self.what}: {self.why}"


def load_keras_model(path: str | Path, *, unsafe: bool = False, warn: bool = True) -> keras.Model:
    """A ``.keras`` model, uncompiled, loaded in Keras safe mode after cnnctl vetted its config (module docstring).

    ``unsafe=True`` loads what the vetting refuses (Lambda layers, unknown classes)
    with ``safe_mode=False``, after a warning on stderr: only for files the user trusts.
    Raises ``UserError`` for a file that is not a complete ``.keras`` archive, and for
    one that holds objects that could run code (unless ``unsafe``). ``warn=False``: no
    warning, for a file cnnctl itself has just written from a model the user trusted.
    """
    path = Path(path)
    config = read_config(path)
    missing = sorted(set(unknown_cnnctl_layers(config)))
    if missing:
        raise UserError(f"{path} uses {_quoted(missing)}, saved as cnnctl's own layer{'s' if len(missing) > 1 else ''}"
                        f", which this cnnctl does not have (its layers: {', '.join(cnnctl_layers())}): the model was "
                        "saved by another version of cnnctl; load it with that version")
    found = untrusted_objects(config)
    if found and not unsafe:
        raise UserError(refusal(path, found))
    if unsafe and warn:
        held = f"it holds {_listed(found)}, which runs now" if found else "nothing in it needed --unsafe"
        print(f"warning: --unsafe: loading {path} with Keras safe mode off, trusting the file: {held}",
              file=sys.stderr)
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=not unsafe)
    except Exception as exc:  # weights that do not fit the config, a damaged member: say so, without a traceback
        located = _NOT_LOCATED.search(str(exc))
        if located:  # Keras's first line blames the model ("could not be deserialized properly"), not the class
            raise UserError(f"{path}: cannot load as a Keras model: Keras cannot locate class '{located[1]}': it "
                            "is not registered in this process; import the package that defines it (and "
                            "registers it with @keras.saving.register_keras_serializable) first") from None
        raise UserError(f"{path}: cannot load as a Keras model: {first_line(exc)}") from None


# How Keras says that a class named in config.json is neither its own nor registered.
_NOT_LOCATED = re.compile(r"Could not locate (?:class|function) '([^']+)'")


def cnnctl_layers() -> list[str]:
    """The names of cnnctl's own layers, as registered with Keras (``cnnctl>NAME``)."""
    return sorted(name.split(">", 1)[1] for name in keras.saving.get_custom_objects() if name.startswith("cnnctl>"))


def unknown_cnnctl_layers(config: dict) -> list[str]:
    """The classes in a model's config saved as cnnctl's (``cnnctl>NAME``, or a ``cnnctl.`` module) that this
    cnnctl has not registered."""
    found: list[str] = []

    def visit(node) -> None:
        if isinstance(node, list):
            for item in node:
                visit(item)
        elif isinstance(node, dict):
            registered, module = node.get("registered_name"), node.get("module")
            if "class_name" in node and isinstance(registered, str) and (
                    registered.startswith("cnnctl>") or (isinstance(module, str) and module.startswith("cnnctl."))):
                if keras.saving.get_registered_object(registered) is None:
                    found.append(registered.split(">", 1)[1] if registered.startswith("cnnctl>")
                                 else str(node["class_name"]))
            for key, value in node.items():
                if key != "compile_config":
                    visit(value)

    visit(config)
    return found


def _quoted(names: list[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)


def refusal(path: Path, found: list[Untrusted]) -> str:
    """The one message for a model file that holds what safe mode refuses."""
    return (f"{path} is refused: it holds {_listed(found)}. Loading it could run code from the file, so cnnctl "
            f"loads models in Keras safe mode, with Keras's classes and its own only; {_UNSAFE_HINT}")


def _listed(found: list[Untrusted]) -> str:
    shown = "; ".join(map(str, found[:3]))
    return shown + (f"; and {len(found) - 3} more" if len(found) > 3 else "")


def read_config(path: Path) -> dict:
    """``config.json`` of the ``.keras`` archive at ``path``, as plain JSON; ``UserError`` for anything else."""
    if not path.is_file():
        raise UserError(f"{path}: no such model file")
    kind = describe_file(path)
    if kind != "a zip archive":
        raise UserError(not_a_model(path, kind))
    try:
        with zipfile.ZipFile(path) as archive:
            try:
                info = archive.getinfo("config.json")
            except KeyError:
                raise UserError(f"{path} is a zip archive without config.json, not a Keras model; "
                                "give a .keras file that Keras saved (model.save('model.keras'))") from None
            if info.file_size > _CONFIG_LIMIT:
                raise UserError(f"{path}: its config.json is {info.file_size / 2**20:,.0f} MB uncompressed, far "
                                "more than any model's configuration; the file is not a model cnnctl loads")
            text = archive.read(info)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise UserError(f"{path} is a damaged .keras archive ({first_line(exc)}); copy or save it again") from None
    try:
        config = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: its config.json is not JSON ({first_line(exc)}); the file is damaged, "
                        "save the model again") from None
    if not isinstance(config, dict) or "class_name" not in config:
        raise UserError(f"{path}: its config.json describes no model; save the model again with Keras")
    return config


def untrusted_objects(config: dict) -> list[Untrusted]:
    """Every object in a model's config that is not Keras's (or a code-running layer) nor registered by cnnctl."""
    found: list[Untrusted] = []

    def visit(node, layer: str | None) -> None:
        if isinstance(node, list):
            for item in node:
                visit(item, layer)
            return
        if not isinstance(node, dict):
            return
        if "class_name" in node and "config" in node:  # what Keras rebuilds as an object
            inner = node["config"]
            name = inner.get("name") if isinstance(inner, dict) else None
            here = name if isinstance(name, str) else layer
            problem = _check(node, here)
            if problem is not None:
                found.append(problem)
                return  # nothing inside a refused object is looked at: its own reason is enough
            layer = here
        for key, value in node.items():
            if key != "compile_config":  # never read: cnnctl loads models uncompiled
                visit(value, layer)

    visit(config, None)
    return found


def _check(node: dict, layer: str | None) -> Untrusted | None:
    """None when Keras may build ``node`` in safe mode with cnnctl's trust; else what it is and why not."""
    class_name, module = node["class_name"], node.get("module")
    registered = node.get("registered_name", class_name)  # as Keras looks it up
    where = f" (in layer '{layer}')" if layer else ""
    if not isinstance(class_name, str) or not isinstance(module, (str, type(None))):
        return Untrusted(layer, f"an object of class {class_name!r}{where}", "its class or module is not a name")
    if class_name in _VALUES:
        return None
    if class_name == "__lambda__":
        return Untrusted(layer, f"a Python lambda{where}", "it is bytecode stored in the file")
    if class_name in CODE_LAYERS:
        named = f" '{layer}'" if layer else ""
        return Untrusted(layer, f"{class_name} layer{named} ({module or 'keras.layers'}.{class_name})",
                         CODE_LAYERS[class_name])
    if class_name == "function":
        return _check_function(node, layer, where)
    label = class_name if class_name != "__typespec__" else str(node.get("spec_name"))
    qualified = f"{module}.{label}" if module else label
    if isinstance(registered, str):
        obj = keras.saving.get_registered_object(registered)
        if obj is not None:
            if getattr(obj, "__module__", "").startswith("cnnctl."):
                return None
            return Untrusted(layer, f"class {registered}{where}", f"it is registered by {obj.__module__}, which is "
                             "neither Keras nor cnnctl")
    if module is None or not (module == "keras" or module.startswith("keras.")):
        source = f"from module '{module}'" if module else "with no module"
        return Untrusted(layer, f"class '{label}' {source}{where}",
                         "Keras and cnnctl do not provide it, so building it means importing code from elsewhere")
    cls = _keras_attribute(module, label)
    if not isinstance(cls, type) or not hasattr(cls, "from_config"):
        return Untrusted(layer, f"class {qualified}{where}", "Keras has no such class")
    refused = next((n for n in CODE_LAYERS if _subclass(cls, n)), None)
    if refused is not None:
        return Untrusted(layer, f"{class_name} layer{where} ({qualified}, a {refused})", CODE_LAYERS[refused])
    return None


def _check_function(node: dict, layer: str | None, where: str) -> Untrusted | None:
    name, module, registered = node["config"], node.get("module"), node.get("registered_name")
    if isinstance(registered, str):
        obj = keras.saving.get_registered_object(registered)
        if obj is not None and getattr(obj, "__module__", "").startswith("cnnctl."):
            return None
    if isinstance(name, str):
        if module == "builtins":  # Keras looks the name up among its own built-in functions only
            families = [f"keras.{family}" for family in _FUNCTION_FAMILIES]
        elif isinstance(module, str) and module.removeprefix("keras.") in _FUNCTION_FAMILIES:
            families = [module]
        else:
            families = []
        if any(callable(_keras_attribute(family, name)) for family in families):
            return None
    shown = f"{module}.{name}" if module else str(name)
    return Untrusted(layer, f"function {shown}{where}", "it is not one of Keras's activations, losses, metrics, "
                     "initializers, regularizers, constraints or ops, nor registered by cnnctl")


def _keras_attribute(module: str, name: str):
    """``module.name`` for a module of the keras package (only Keras's own code is imported), else None."""
    if not (module == "keras" or module.startswith("keras.")) or not all(p.isidentifier() for p in module.split(".")):
        return None
    try:
        return getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None


def _subclass(cls: type, layer_name: str) -> bool:
    base = getattr(keras.layers, layer_name, None)
    return isinstance(base, type) and issubclass(cls, base)
