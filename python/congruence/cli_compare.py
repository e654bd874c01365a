"""``congruence compare``: compare two networks' layers from the command line.

Three modes, chosen by the positional arguments:

- none: the built-in demo job. Two small CNNs that differ only in their seed are trained on
  scikit-learn's bundled 8×8 digits (:mod:`congruence.examples.digits`, a few seconds each on a
  CPU), and every named layer of A is compared with every named layer of B on the held-out
  images.
- one or two activation files (``.npy``, ``.npz``, ``.safetensors``): compared with
  :func:`congruence.compare_activations` (one file: the layers compared with themselves).
- one or two models as ``module:factory`` (an importable module, or a ``path/to/file.py``, and a
  zero-argument callable in it returning a ``torch.nn.Module``), run on ``--data`` with
  :func:`congruence.compare`. ``--checkpoint-a/-b`` load state dicts
  (``torch.load(..., weights_only=True)``); with one factory and two checkpoints both models are
  built from that factory.

For each measure the A×B table is printed; a heatmap PNG (``--out``) and optionally JSON
(``--json``) are written. Bad arguments and unreadable files exit with status 2 and a message.

``main(argv)`` takes the arguments after ``compare`` and returns the exit status.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import os
import pickle
import sys
import time
import zipfile
from typing import Any, Dict, List, Optional, Sequence

PROG = "congruence compare"

ACTIVATION_SUFFIXES = (".npy", ".npz", ".safetensors")
DATA_SUFFIXES = (".npy", ".npz", ".pt", ".pth")
DATA_KEYS = ("inputs", "input", "x", "X", "data", "images")

#: The measures ``--measures all`` expands to (the feature- and sample-space measures named in
#: docs/api.md); any other name in ``congruence.similarity.REGISTRY`` is passed on as given.
ALL_MEASURES = ("linear_cka", "debiased_cka", "cca", "svcca", "pwcca", "procrustes", "rsa")

DEFAULT_OUT = "congruence-compare.png"
DEFAULT_BATCH_SIZE = 256

_DESCRIPTION = """\
Compare the layers of two networks with representational-similarity measures.

modes (chosen by the positional arguments):
  (none)                 demo: train two small CNNs from different seeds on scikit-learn's 8x8
                         digits (no download, a few seconds each) and compare all their named
                         layers (conv1 relu1 conv2 relu2 pool flatten fc1 relu3 fc2; fc2 is the
                         logits, and flatten repeats pool, both kept on purpose) on the 450
                         held-out images
  ACTS_A [ACTS_B]        activation files (.npy, .npz, .safetensors): a dict of layer name ->
                         (samples, ...) array per file (a .npy holds one array); one file is
                         compared with itself
  MODULE:FACTORY [MODULE:FACTORY]
                         models: a zero-argument callable returning a torch.nn.Module, from an
                         importable module (the current directory is on the path) or a .py
                         file; needs --data; one factory with --checkpoint-a and --checkpoint-b
                         builds both models from it; one factory alone is compared with itself
"""

_EPILOG = """\
examples:
  congruence compare
  congruence compare --measures linear_cka,cca,rsa --out digits.png --json digits.json
  congruence compare acts_a.npz acts_b.npz --measures debiased_cka --layers-a conv1,fc1
  congruence compare mynets:make_resnet --checkpoint-a run1.pt --checkpoint-b run2.pt \\
      --data val_images.npy --batch-size 128 --spatial flatten --progress
  congruence compare mynets.py:make_a mynets.py:make_b --data batch.pt --list-layers

The A x B table of each measure is printed; the heatmap goes to --out (default:
%s in the current directory), the JSON to --json. Exit status: 0 on success,
2 for bad arguments or unreadable files.
""" % DEFAULT_OUT


class UsageError(Exception):
    """A bad argument or an unreadable input: reported as ``congruence compare: error: ...``, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> "None":  # type: ignore[override]
        raise UsageError(message)


def _comma_list(text: str) -> List[str]:
    items = [t.strip() for t in text.split(",")]
    if not text.strip() or any(not t for t in items):
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of names, got {text!r}")
    return items


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG, description=_DESCRIPTION, epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False,
    )
    p.add_argument("inputs", nargs="*", metavar="INPUT",
                   help="A and optionally B: nothing (the demo), one or two activation files, or one or "
                        "two MODULE:FACTORY models (see the modes above)")

    g = p.add_argument_group("measures and output")
    g.add_argument("--measures", type=_comma_list, default=["linear_cka"], metavar="M1,M2,...",
                   help="comma-separated measures (default: linear_cka), from: "
                        + ", ".join(ALL_MEASURES) + " ('all' runs these), or another name in "
                        "congruence.similarity.REGISTRY that compare supports")
    g.add_argument("--out", default=DEFAULT_OUT, metavar="PATH",
                   help=f"heatmap PNG to write, one panel per measure (default: {DEFAULT_OUT})")
    g.add_argument("--no-plot", action="store_true", help="do not write the heatmap")
    g.add_argument("--no-annotate", action="store_true", help="heatmap cells without their values")
    g.add_argument("--json", metavar="PATH", help="also write the comparison as JSON")

    g = p.add_argument_group("layers and capture")
    g.add_argument("--layers-a", type=_comma_list, metavar="L1,L2,...",
                   help="layers of A to compare (default: all; the demo: its nine named layers)")
    g.add_argument("--layers-b", type=_comma_list, metavar="L1,L2,...", help="layers of B (default: all)")
    g.add_argument("--list-layers", action="store_true",
                   help="print the layer names of the model(s) or activation file(s) and exit")
    g.add_argument("--spatial", metavar="MODE",
                   help="how (N, C, H, W, ...) activations become rows x features: flatten (the default), "
                        "mean (over positions) or positions (each position a row), as compare takes it")
    g.add_argument("--max-batches", type=_positive_int, metavar="N", help="use at most N batches of the data")
    g.add_argument("--reservoir", type=_positive_int, metavar="N",
                   help="samples kept for the sample-space measures (compare's default: 4096)")
    g.add_argument("--seed", type=int, metavar="S", help="seed of compare's sampling (default 0)")
    g.add_argument("--device", metavar="DEV", help="device to run the models and measures on (e.g. cpu, cuda)")
    g.add_argument("--progress", action="store_true", help="show a progress bar")

    g = p.add_argument_group("models (MODULE:FACTORY mode)")
    g.add_argument("--checkpoint-a", metavar="PATH", help="state dict for model A (torch.load, weights_only=True)")
    g.add_argument("--checkpoint-b", metavar="PATH",
                   help="state dict for model B (with a single factory, B is built from that factory)")
    g.add_argument("--data", metavar="PATH",
                   help="model inputs: .npy, .npz or .pt/.pth holding one tensor (samples first); "
                        "an (inputs, targets) pair or a dict uses its inputs")
    g.add_argument("--data-key", metavar="KEY",
                   help="the array to use from a .npz or a .pt dict (default: the only one, or one of "
                        + ", ".join(DATA_KEYS) + ")")
    g.add_argument("--batch-size", type=_positive_int, metavar="N",
                   help=f"batch size for running the models (default: {DEFAULT_BATCH_SIZE})")

    g = p.add_argument_group("demo job (no positional arguments)")
    g.add_argument("--seed-a", type=int, metavar="S", help="seed of model A (default: 0)")
    g.add_argument("--seed-b", type=int, metavar="S", help="seed of model B (default: 1)")
    g.add_argument("--epochs", type=_positive_int, metavar="N", help="training epochs per model (default: 12)")
    g.add_argument("--threads", type=_positive_int, metavar="N", help="torch threads for training (default: 1, the fastest and reproducible across machines)")
    return p


# --------------------------------------------------------------------------------------------
# argument checks (no heavy imports: these run before torch or congruence.comparison are loaded)


def _classify(path_or_spec: str) -> str:
    """'acts' for an activation file, 'model' for MODULE:FACTORY; raises UsageError otherwise."""
    lower = path_or_spec.lower()
    if lower.endswith(ACTIVATION_SUFFIXES):
        if not os.path.isfile(path_or_spec):
            raise UsageError(f"activation file not found: {path_or_spec}")
        if not os.access(path_or_spec, os.R_OK):
            raise UsageError(f"activation file not readable: {path_or_spec}")
        return "acts"
    module, sep, attr = path_or_spec.rpartition(":")
    if sep and module and attr and not os.path.exists(path_or_spec):
        return "model"
    if os.path.exists(path_or_spec):
        raise UsageError(
            f"{path_or_spec}: not an activation file (expected one of {', '.join(ACTIVATION_SUFFIXES)})"
        )
    raise UsageError(
        f"{path_or_spec!r} is neither an activation file ({', '.join(ACTIVATION_SUFFIXES)}) "
        "nor a model given as MODULE:FACTORY"
    )


def _check_output(path: Optional[str], what: str) -> None:
    if path is None:
        return
    if os.path.isdir(path):
        raise UsageError(f"{what} {path} is a directory; give a file name")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise UsageError(f"{what} {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"{what} {path}: directory {parent} is not writable")


def _resolve_measures(names: Sequence[str]) -> List[str]:
    out: List[str] = []
    for name in names:
        for n in (ALL_MEASURES if name == "all" else (name,)):
            if n not in out:
                out.append(n)
    try:
        from .similarity import REGISTRY
    except Exception:  # pragma: no cover - the similarity package is part of the library
        known = set(ALL_MEASURES)
    else:
        known = set(REGISTRY) | set(ALL_MEASURES)
    unknown = [n for n in out if n not in known]
    if unknown:
        raise UsageError(
            f"unknown measure(s): {', '.join(unknown)} (try: {', '.join(ALL_MEASURES)}, or 'all')"
        )
    return out


def _check_mode_options(args: argparse.Namespace, mode: str) -> None:
    model_only = {"--checkpoint-a": args.checkpoint_a, "--checkpoint-b": args.checkpoint_b,
                  "--data": args.data, "--data-key": args.data_key, "--batch-size": args.batch_size}
    demo_only = {"--epochs": args.epochs, "--threads": args.threads,
                 "--seed-a": args.seed_a, "--seed-b": args.seed_b}
    wrong = []
    if mode != "model":
        wrong += [k for k, v in model_only.items() if v is not None]
    if mode != "demo":
        wrong += [k for k, v in demo_only.items() if v is not None]
    if mode == "acts":
        wrong += [k for k, v in {"--max-batches": args.max_batches, "--device": args.device}.items() if v is not None]
    if wrong:
        what = {"demo": "the demo job", "acts": "activation files", "model": "models"}[mode]
        raise UsageError(f"{', '.join(wrong)} cannot be used with {what}")
    if mode == "model":
        if args.data is None and not args.list_layers:
            raise UsageError("models need --data PATH (a .npy, .npz or .pt file of inputs)")
        if args.data is not None:
            if not args.data.lower().endswith(DATA_SUFFIXES):
                raise UsageError(f"--data {args.data}: expected one of {', '.join(DATA_SUFFIXES)}")
            _check_readable(args.data, "--data")
        for opt, path in (("--checkpoint-a", args.checkpoint_a), ("--checkpoint-b", args.checkpoint_b)):
            if path is not None:
                _check_readable(path, opt)


def _check_readable(path: str, opt: str) -> None:
    if not os.path.isfile(path):
        raise UsageError(f"{opt} {path}: no such file")
    if not os.access(path, os.R_OK):
        raise UsageError(f"{opt} {path}: not readable")


# --------------------------------------------------------------------------------------------
# loading models and data


def _load_factory(spec: str):
    module_name, _, attr_path = spec.rpartition(":")
    if module_name.endswith(".py") or os.sep in module_name or "/" in module_name:
        if not os.path.isfile(module_name):
            raise UsageError(f"{spec}: no such file {module_name}")
        name = "_congruence_cli_" + os.path.splitext(os.path.basename(module_name))[0].replace("-", "_")
        try:
            spec_obj = importlib.util.spec_from_file_location(name, module_name)
            if spec_obj is None or spec_obj.loader is None:
                raise ImportError(f"cannot load {module_name} as a Python module")
            module = importlib.util.module_from_spec(spec_obj)
            sys.modules[name] = module
            spec_obj.loader.exec_module(module)
        except UsageError:
            raise
        except Exception as exc:
            raise UsageError(f"{spec}: importing {module_name} failed: {type(exc).__name__}: {exc}") from exc
    else:
        if os.getcwd() not in sys.path and "" not in sys.path:
            sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise UsageError(f"{spec}: importing {module_name} failed: {type(exc).__name__}: {exc}") from exc
    obj: Any = module
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UsageError(f"{spec}: {module_name} has no attribute {attr_path}") from None
    if not callable(obj):
        raise UsageError(f"{spec}: {attr_path} is not callable")
    return obj


def _build_model(spec: str, checkpoint: Optional[str]):
    import torch

    factory = _load_factory(spec)
    try:
        model = factory()
    except Exception as exc:
        raise UsageError(f"{spec}: calling {spec.rpartition(':')[2]}() failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(model, torch.nn.Module):
        raise UsageError(f"{spec}: the factory returned {type(model).__name__}, not a torch.nn.Module")
    if checkpoint is not None:
        state = _torch_load(checkpoint, "checkpoint")
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
                break
        if not isinstance(state, dict):
            raise UsageError(f"checkpoint {checkpoint}: expected a state dict, got {type(state).__name__}")
        try:
            model.load_state_dict(state)
        except Exception as exc:
            raise UsageError(f"checkpoint {checkpoint} does not fit {spec}: {exc}") from exc
    model.eval()
    return model


def _torch_load(path: str, what: str):
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = (str(exc).splitlines() or [""])[0]
        if len(detail) > 160:
            detail = detail[:157] + "..."
        raise UsageError(
            f"{what} {path}: not loadable with torch.load(weights_only=True) (not a torch file, or it "
            f"pickles objects other than tensors and plain containers): {detail}"
        ) from exc
    except (OSError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError) as exc:
        raise UsageError(f"{what} {path}: unreadable: {type(exc).__name__}: {exc}") from exc


def _pick(container: Dict[str, Any], key: Optional[str], path: str):
    keys = list(container)
    if key is not None:
        if key not in container:
            raise UsageError(f"--data {path}: no array {key!r} (it holds: {', '.join(map(str, keys))})")
        return container[key]
    if len(keys) == 1:
        return container[keys[0]]
    for k in DATA_KEYS:
        if k in container:
            return container[k]
    raise UsageError(
        f"--data {path}: holds {', '.join(map(str, keys)) or 'nothing'}; choose one with --data-key"
    )


def _load_inputs(path: str, key: Optional[str]):
    import numpy as np
    import torch

    lower = path.lower()
    try:
        if lower.endswith(".npy"):
            if key is not None:
                raise UsageError("--data-key is for .npz and .pt files")
            data = np.load(path, allow_pickle=False)
        elif lower.endswith(".npz"):
            with np.load(path, allow_pickle=False) as z:
                data = np.asarray(_pick({k: z[k] for k in z.files}, key, path))
        else:
            data = _torch_load(path, "--data")
            if isinstance(data, (tuple, list)):
                if not data:
                    raise UsageError(f"--data {path}: empty {type(data).__name__}")
                data = data[0]  # (inputs, targets)
            elif isinstance(data, dict):
                data = _pick(data, key, path)
    except UsageError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise UsageError(f"--data {path}: unreadable: {type(exc).__name__}: {exc}") from exc
    if isinstance(data, np.ndarray):
        if data.dtype == object:
            raise UsageError(f"--data {path}: object arrays are not supported")
        data = torch.from_numpy(np.ascontiguousarray(data))
    if not isinstance(data, torch.Tensor):
        raise UsageError(f"--data {path}: expected an array or tensor, got {type(data).__name__}")
    if data.ndim < 1 or data.shape[0] == 0:
        raise UsageError(f"--data {path}: expected samples along the first axis, got shape {tuple(data.shape)}")
    return data


def _match_dtype(data, model):
    """Floating inputs take the model's floating dtype (float64 .npy files into float32 models)."""
    if not data.is_floating_point():
        return data
    for p in model.parameters():
        if p.is_floating_point():
            return data.to(p.dtype)
    return data


# --------------------------------------------------------------------------------------------
# running


def _call_supported(fn, what: str, positional: Sequence[Any], required: Dict[str, Any], optional: Dict[str, Any]):
    """Call ``fn`` with ``required`` keywords and those ``optional`` ones the user set and ``fn`` takes."""
    kwargs = dict(required)
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins
        params = None
    takes_var_kw = params is not None and any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    for name, (value, option) in optional.items():
        if value is None:
            continue
        if params is not None and not takes_var_kw and name not in params:
            raise UsageError(f"{option} is not supported with {what}")
        kwargs[name] = value
    try:
        return fn(*positional, **kwargs)
    except (ValueError, KeyError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        raise UsageError(f"{what}: {msg}") from exc


def _optional_kwargs(args: argparse.Namespace, mode: str) -> Dict[str, Any]:
    opts = {
        "spatial": (args.spatial, "--spatial"),
        "reservoir": (args.reservoir, "--reservoir"),
        "seed": (args.seed, "--seed"),
        "progress": (True if args.progress else None, "--progress"),
    }
    if mode != "acts":
        opts["max_batches"] = (args.max_batches, "--max-batches")
        opts["device"] = (args.device, "--device")
    return opts


def _import_compare():
    try:
        from . import comparison as compare_module
    except ImportError as exc:
        raise UsageError(f"congruence.comparison is not available: {exc}") from exc
    return compare_module


def _list_layers(model) -> List[str]:
    try:
        from .models import list_layers
    except ImportError:  # fall back to the leaf modules
        return [n for n, m in model.named_modules() if n and not list(m.children())]
    return list(list_layers(model))


def _print_act_layers(path: str) -> None:
    import numpy as np

    lower = path.lower()
    try:
        if lower.endswith(".npy"):
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
            items = [(os.path.splitext(os.path.basename(path))[0], arr.shape)]
        elif lower.endswith(".npz"):
            with np.load(path, allow_pickle=False) as z:
                items = [(k, z[k].shape) for k in z.files]
        else:
            from safetensors import safe_open

            with safe_open(path, framework="numpy") as f:
                items = [(k, tuple(f.get_slice(k).get_shape())) for k in f.keys()]
    except ImportError as exc:
        raise UsageError(f"{path}: reading .safetensors needs the safetensors package ({exc})") from exc
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise UsageError(f"{path}: unreadable: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:  # safetensors raises its own error type for corrupt files
        raise UsageError(f"{path}: unreadable: {type(exc).__name__}: {exc}") from exc
    print(f"{path}:")
    for k, shape in items:
        print(f"  {k}  {tuple(shape)}")


def _report(comparison, args: argparse.Namespace, measures: Sequence[str]) -> None:
    n = getattr(comparison, "n_samples", None)
    line = f"compared {len(comparison.layers_a)} x {len(comparison.layers_b)} layers"
    if n is not None:
        line += f" on {n} samples"
    print(line)  # a measure computed on a reservoir subset says so in its table's title
    for m in measures:
        print()
        print(comparison.table(measure=m))
    if not args.no_plot:
        path = comparison.plot(args.out, annotate=not args.no_annotate)
        print(f"\nheatmap: {path or args.out}")
    if args.json:
        comparison.to_json(args.json)
        print(f"json: {args.json}")


def _run_demo(args: argparse.Namespace, measures: Sequence[str]):
    try:
        from .examples import digits
    except ImportError as exc:
        raise UsageError(f"the demo job needs torch and scikit-learn: {exc}") from exc
    if args.list_layers:
        print("demo model (congruence.examples.digits.make_digits_cnn):")
        for name in _list_layers(digits.make_digits_cnn()):
            print(f"  {name}")
        return None
    known = [n for n, _ in digits.make_digits_cnn().named_modules() if n]
    for opt, names in (("--layers-a", args.layers_a), ("--layers-b", args.layers_b)):
        bad = [n for n in names or () if n not in known]
        if bad:  # checked before training, not after
            raise UsageError(f"{opt}: the demo model has no layer {', '.join(bad)} (it has: {', '.join(known)})")
    epochs = args.epochs if args.epochs is not None else digits.DEFAULT_EPOCHS
    seed_a = 0 if args.seed_a is None else args.seed_a
    seed_b = 1 if args.seed_b is None else args.seed_b
    print(f"demo: two CNNs ({sum(p.numel() for p in digits.make_digits_cnn().parameters()):,} parameters) "
          f"trained on scikit-learn's 8x8 digits from seeds {seed_a} and {seed_b}, {epochs} epochs each")
    job = digits.default_job(seed_a, seed_b, epochs=epochs, num_threads=args.threads, verbose=True)
    cm = _import_compare()
    t0 = time.perf_counter()
    result = _call_supported(
        cm.compare, "compare", (job.model_a, job.model_b, job.batches),
        {"layers_a": args.layers_a or list(job.layers), "layers_b": args.layers_b or list(job.layers),
         "measures": tuple(measures)},
        _optional_kwargs(args, "demo"),
    )
    print(f"compare: {time.perf_counter() - t0:.2f} s")
    return result


def _run_acts(args: argparse.Namespace, measures: Sequence[str]):
    if args.list_layers:
        for path in args.inputs:
            _print_act_layers(path)
        return None
    cm = _import_compare()
    a = args.inputs[0]
    b = args.inputs[1] if len(args.inputs) > 1 else None
    try:
        return _call_supported(
            cm.compare_activations, "compare_activations", (a, b),
            {"measures": tuple(measures), "layers_a": args.layers_a, "layers_b": args.layers_b},
            _optional_kwargs(args, "acts"),
        )
    except (OSError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError) as exc:
        raise UsageError(f"reading activations failed: {type(exc).__name__}: {exc}") from exc


def _run_models(args: argparse.Namespace, measures: Sequence[str]):
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        raise UsageError(f"comparing models needs torch: {exc}") from exc
    spec_a = args.inputs[0]
    spec_b = args.inputs[1] if len(args.inputs) > 1 else None
    model_a = _build_model(spec_a, args.checkpoint_a)
    if spec_b is not None:
        model_b = _build_model(spec_b, args.checkpoint_b)
    elif args.checkpoint_b is not None:
        model_b = _build_model(spec_a, args.checkpoint_b)
    else:
        model_b = None
    if args.list_layers:
        for label, model in (("A", model_a), ("B", model_b)):
            if model is not None:
                print(f"model {label}:")
                for name in _list_layers(model):
                    print(f"  {name}")
        return None
    data = _match_dtype(_load_inputs(args.data, args.data_key), model_a)
    batch_size = args.batch_size or DEFAULT_BATCH_SIZE
    batches = list(data.split(batch_size))
    print(f"data: {args.data}, {data.shape[0]} samples of shape {tuple(data.shape[1:])}, "
          f"{len(batches)} batches of up to {batch_size}")
    cm = _import_compare()
    return _call_supported(
        cm.compare, "compare", (model_a, model_b, batches),
        {"layers_a": args.layers_a, "layers_b": args.layers_b, "measures": tuple(measures)},
        _optional_kwargs(args, "model"),
    )


def _run(argv: Sequence[str]) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    if len(args.inputs) > 2:
        raise UsageError(f"at most two inputs (A and B), got {len(args.inputs)}")
    kinds = {_classify(x) for x in args.inputs}
    if len(kinds) > 1:
        raise UsageError("A and B must both be activation files or both be MODULE:FACTORY models")
    mode = kinds.pop() if kinds else "demo"
    _check_mode_options(args, mode)
    measures = _resolve_measures(args.measures)
    if not args.list_layers:
        if not args.no_plot:
            _check_output(args.out, "--out")
            if importlib.util.find_spec("matplotlib") is None:
                raise UsageError("the heatmap needs matplotlib (pip install matplotlib), or pass --no-plot")
        _check_output(args.json, "--json")
    if not args.no_plot and "matplotlib" not in sys.modules:
        os.environ.setdefault("MPLBACKEND", "Agg")  # a command-line tool writes files, it opens no windows

    run = {"demo": _run_demo, "acts": _run_acts, "model": _run_models}[mode]
    comparison = run(args, measures)
    if comparison is not None:
        _report(comparison, args, measures)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``congruence compare`` with ``argv`` (the arguments after ``compare``); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return _run(argv)
    except UsageError as exc:
        print(f"usage: {PROG} [INPUT [INPUT]] [options]   (see {PROG} --help)", file=sys.stderr)
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
