"""From a name on the command line to a ready ``nn.Module``: zoo models and user models alike.

``resolve_model`` accepts a registered name (``lgvan``) or a user model as ``path/to/file.py:ClassName``,
builds it, finds and loads its checkpoint (see ``sr_bench.weights``), and returns the module with the
facts every measurement record needs (spec, scale, input range, checkpoint path and hash).
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from sr_bench import vml_warmup
from sr_bench import weights as checkpoint_io
from sr_bench.errors import CheckpointError, ModelSpecError, UnknownModelError, UsageError
from sr_bench.user_code import cpu_cuda_shims, model_phase
from sr_bench.zoo import ModelSpec, get_spec

# Constructor arguments that receive ``--scale`` for a user model when the caller did not set them.
SCALE_ARG_NAMES = ("scale", "upscale", "upscale_factor", "upscaling_factor")


@dataclass(frozen=True)
class LoadOptions:
    """How a checkpoint goes into the model, for submissions that need more than a strict load.

    ``checkpoint_key``: the entry holding the state dict (None: the spec's, then the documented order;
    ``"none"``: the top level). ``strict=False`` accepts missing/unexpected keys (counted in the record).
    ``after_load``: methods called, after loading, on every submodule that has them (``switch_deploy``, ``fuse``).
    """

    checkpoint_key: str | None = None
    strict: bool = True
    after_load: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        bad = [m for m in self.after_load if not m.isidentifier()]
        if bad:
            raise UsageError(f"--after-load takes a method name such as switch_deploy, got {bad[0]!r}")


@dataclass(frozen=True)
class CheckpointInfo:
    """Which weights a model carries; ``verified`` is None when no official hash exists to compare with.

    ``verified`` is a fact about the file (its sha256 is the official file's); ``key`` is the entry that was loaded
    and ``official_key`` the entry the spec names as the official weights, so a verified file loaded through another
    entry (``--checkpoint-key params`` where ``params_ema`` is official) is not mistaken for the official model.
    """

    path: Path | None
    sha256: str | None
    verified: bool | None
    key: str | None = None
    load: checkpoint_io.LoadReport | None = None  # None: nothing was loaded
    after_load: dict[str, int] = field(default_factory=dict)  # method -> submodules it ran on
    official_key: str | None = None  # the spec's entry for the official weights (None: the spec names none)

    def to_dict(self) -> dict:
        return {
            "path": str(self.path) if self.path else None,
            "sha256": self.sha256,
            "verified": self.verified,
            "key": self.key,
            "official_key": self.official_key,
            "load": self.load.to_dict() if self.load else None,
            "after_load": dict(self.after_load),
        }


@dataclass
class LoadedModel:
    """A built model plus the facts about it that measurements record."""

    module: nn.Module
    spec: ModelSpec
    scale: int
    data_range: float
    checkpoint: CheckpointInfo
    notices: list[str] = field(default_factory=list)  # facts worth a line (e.g. random weights)
    warnings: list[str] = field(default_factory=list)  # problems that make numbers unofficial (e.g. hash mismatch)
    shims: dict | None = None  # what the CPU shims for .cuda() did (sr_bench.user_code), None when none ran
    load: LoadOptions = field(default_factory=LoadOptions)  # how the checkpoint went in (strict, after-load)
    model_args: dict[str, object] = field(default_factory=dict)  # --model-args (user models; zoo models take none)
    model_file_sha256: str | None = None  # the user's model file (file.py:Class); None for zoo and plugin models

    def __post_init__(self) -> None:
        """Every forward srbench runs (eval, profile, upscale, challenge, the ``auto`` probe) is of a LoadedModel's
        module, so this is where oneMKL's vector-math kernels are resolved on one thread first: once per process
        (see :mod:`sr_bench.vml_warmup`)."""
        vml_warmup.warm_up()

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def model_args_json(self) -> str:
        """``model_args`` as canonical JSON (sorted keys), so equal arguments compare equal however they were
        written; a value JSON cannot hold is written by its ``repr``."""
        return canonical_json(self.model_args)

    def model_facts(self) -> dict:
        """The record's ``model_args`` (JSON-safe) and ``model_file_sha256``: with ``checkpoint``, what was built."""
        return {"model_args": json.loads(self.model_args_json), "model_file_sha256": self.model_file_sha256}

    @property
    def pretrained(self) -> bool:
        return self.checkpoint.path is not None


def is_user_model(name: str) -> bool:
    return ":" in name and name.rsplit(":", 1)[0].endswith(".py")


def resolve_model(
    name_or_path: str,
    scale: int | None = None,
    weights: str | Path | None = None,
    device: str | torch.device = "cpu",
    data_range: float | None = None,
    model_args: str | Mapping[str, object] | None = None,
    require_weights: bool = False,
    load: LoadOptions | None = None,
) -> LoadedModel:
    """Build a zoo or user model, load its checkpoint when one is found, and move it to ``device``.

    Without a checkpoint the model keeps its random initialisation and a notice says so (fine for FLOPs
    and runtime); ``require_weights=True`` (quality evaluation) turns that into an error. A user model's code
    runs inside the fault boundary of :mod:`sr_bench.user_code` and, without CUDA, with its CPU shims.
    """
    load = load or LoadOptions()
    explicit = Path(weights).expanduser() if weights is not None else None
    kwargs = parse_model_args(model_args)
    user = is_user_model(name_or_path)
    target = torch.device(device)
    source_sha256 = None
    with cpu_cuda_shims(active=None if user and target.type != "cuda" else False) as shims:
        if user:
            spec = user_model_spec(name_or_path, scale, data_range, kwargs)
            source_sha256 = checkpoint_io.sha256_file(_model_file(name_or_path))  # the code that was imported
        else:
            if name_or_path.endswith(".py"):
                raise _file_without_class(name_or_path)
            if kwargs:
                raise ModelSpecError("--model-args applies to user models (file.py:Class) only")
            spec = get_spec(name_or_path)
            if data_range is not None and data_range != spec.data_range:
                raise ModelSpecError(
                    f"model {spec.name!r} works in [0, {spec.data_range:g}]; --data-range {data_range:g} would ruin "
                    "its output — drop --data-range for zoo models"
                )
        scale = spec.check_scale(scale)
        module = spec.build(scale)
        notices: list[str] = []
        warnings: list[str] = []
        path = checkpoint_io.find_checkpoint(spec.checkpoint(scale), explicit)
        if path is None:
            info = CheckpointInfo(None, None, None)
            how = _how_to_get(spec, scale)
            if require_weights:
                raise CheckpointError(f"no checkpoint for {spec.name} x{scale}: {how}")
            notices.append(f"{spec.name} x{scale}: no checkpoint found, using random weights ({how})")
            if load.after_load:
                info = CheckpointInfo(None, None, None, after_load=after_load(module, load.after_load, spec.name))
        else:
            info = _load_into(module, spec, scale, path, load, notices, warnings)
        with model_phase(spec.name, "load"):
            module = module.to(target).eval()
    if message := shims.notice(spec.name):
        notices.append(message)
    record = shims.to_dict() if shims.active and (shims.cuda_calls or shims.loads_mapped) else None
    return LoadedModel(module, spec, scale, spec.data_range, info, notices, warnings, record, load, kwargs,
                       source_sha256)


def load_model(
    name_or_path: str,
    scale: int = 4,
    weights: str | Path | None = None,
    device: str | torch.device = "cpu",
    load: LoadOptions | None = None,
) -> nn.Module:
    """The model as an ``nn.Module`` in eval mode, with its checkpoint loaded when one is found.

    >>> model = load_model("rfdn")   # doctest: +SKIP
    """
    return resolve_model(name_or_path, scale=scale, weights=weights, device=device, load=load).module


def after_load(module: nn.Module, methods: tuple[str, ...], name: str) -> dict[str, int]:
    """Call each method on every submodule that has it (as NTIRE harnesses do for ``switch_deploy``); returns the
    number of calls per method. A method no submodule has is an error: a typo must not measure the wrong graph."""
    calls = {}
    for method in methods:
        targets = [m for m in module.modules() if callable(getattr(m, method, None))]
        if not targets:
            raise ModelSpecError(f"--after-load {method}: no module of {name} has a {method}() method "
                                 "(check the name, e.g. switch_deploy, fuse, reparameterize)")
        with model_phase(name, "after-load"):
            for target in targets:
                getattr(target, method)()
        calls[method] = len(targets)
    return calls


def _load_into(module: nn.Module, spec: ModelSpec, scale: int, path: Path, load: LoadOptions,
               notices: list[str], warnings: list[str]) -> CheckpointInfo:
    ckpt_spec = spec.checkpoint(scale)
    key = load.checkpoint_key or (ckpt_spec.key if ckpt_spec else None)
    raw = checkpoint_io.read_checkpoint(path)
    state = checkpoint_io.unwrap_state_dict(raw, key=key, source=str(path), explicit=load.checkpoint_key is not None)
    if state.notice:
        notices.append(state.notice)
    if (bad_weights := checkpoint_io.non_finite_warning(state.tensors, str(path))) is not None:
        warnings.append(bad_weights)
    report = checkpoint_io.load_into(module, state.tensors, source=str(path), model_name=f"{spec.name} x{scale}",
                                     strict=load.strict)
    if message := report.notice(str(path)):
        notices.append(message)
    calls = after_load(module, load.after_load, spec.name) if load.after_load else {}
    digest = checkpoint_io.sha256_file(path)
    verified = None
    if ckpt_spec is not None and ckpt_spec.sha256 is not None:
        verified = digest == ckpt_spec.sha256
        if not verified:
            warnings.append(checkpoint_io.hash_mismatch_warning(path, digest, ckpt_spec.sha256))
    official_key = ckpt_spec.key if ckpt_spec else None
    if load.checkpoint_key is not None and official_key is not None and state.key != official_key:
        entry = f"the {state.key!r} entry" if state.key else "the top level"
        warnings.append(f"{spec.name} x{scale}: --checkpoint-key loaded {entry} of {path}; the official weights "
                        f"are its {official_key!r} entry, so numbers are not the official model's")
    return CheckpointInfo(path.resolve(), digest, verified, state.key, report, calls, official_key)


def _how_to_get(spec: ModelSpec, scale: int) -> str:
    ckpt = spec.checkpoint(scale)
    if spec.origin == "file":
        return "pass --weights FILE"
    if ckpt is None:
        return "no official checkpoint is known; pass --weights FILE"
    if ckpt.url:
        return f"run 'srbench weights pull {spec.name}' or pass --weights FILE"
    return f"{ckpt.note or 'get ' + ckpt.file + ' from its authors'}; or pass --weights FILE"


def parse_model_args(model_args: str | Mapping[str, object] | None) -> dict[str, object]:
    """``--model-args`` as a dict; the string form is a JSON object."""
    if model_args is None or model_args == "":
        return {}
    if isinstance(model_args, Mapping):
        return dict(model_args)
    try:
        parsed = json.loads(model_args)
    except json.JSONDecodeError as exc:
        raise ModelSpecError(f"--model-args is not valid JSON ({exc.msg} at char {exc.pos}): {model_args!r}") from None
    if not isinstance(parsed, dict):
        raise ModelSpecError(f"--model-args must be a JSON object like '{{\"dim\": 48}}', got {model_args!r}")
    return parsed


def canonical_json(value: object) -> str:
    """One spelling of a JSON value: sorted keys, no spaces (what run identities compare)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=repr)


def _model_file(target: str) -> Path:
    """The file of ``path/to/file.py:ClassName``."""
    return Path(target.rpartition(":")[0]).expanduser()


def user_model_spec(
    target: str, scale: int | None, data_range: float | None, kwargs: Mapping[str, object]
) -> ModelSpec:
    """A spec for ``path/to/file.py:ClassName``, so user networks go through every command unchanged."""
    cls = _import_class(target)
    scale = 4 if scale is None else scale
    if scale < 1:
        raise ModelSpecError(f"--scale must be a positive integer, got {scale}")
    data_range = 1.0 if data_range is None else float(data_range)
    if data_range not in (1.0, 255.0):
        raise ModelSpecError(f"--data-range must be 1 or 255, got {data_range:g}")
    build_kwargs = dict(kwargs)
    accepted = _init_params(cls)
    for arg in SCALE_ARG_NAMES:
        if arg in accepted and not any(a in build_kwargs for a in SCALE_ARG_NAMES):
            build_kwargs[arg] = scale
            break

    def build(_scale: int, **kw: object) -> nn.Module:
        _check_arguments(cls, target, kw)
        with model_phase(target, "construct"):
            model = cls(**kw)
        if not isinstance(model, nn.Module):
            raise ModelSpecError(f"{target} built a {type(model).__name__}, not a torch.nn.Module")
        return model

    return ModelSpec(
        name=target,
        builder=build,
        scales=(scale,),
        default_scale=scale,
        data_range=data_range,
        description=f"user model {cls.__name__} from {target.rsplit(':', 1)[0]}",
        builder_kwargs=build_kwargs,
        origin="file",
    )


def _check_arguments(cls: type, target: str, kwargs: Mapping[str, object]) -> None:
    """Arguments the constructor cannot take are a wrong --model-args, not a fault in the model."""
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(**kwargs)
    except TypeError as exc:
        raise ModelSpecError(f"cannot build {target} with arguments {dict(kwargs)}: {exc} (check --model-args)") from None


def _init_params(cls: type) -> set[str]:
    try:
        return set(inspect.signature(cls).parameters)
    except (TypeError, ValueError):
        return set()


def _import_class(target: str) -> type:
    class_name = target.rpartition(":")[2]
    path = _model_file(target)
    if not class_name.isidentifier():
        raise UnknownModelError(f"{class_name!r} is not a class name (expected --model path/to/file.py:ClassName)")
    module = _import_file(path)
    cls = getattr(module, class_name, None)
    if cls is None:
        raise UnknownModelError(f"{path} has no class {class_name!r} ({_classes_hint(module)})")
    if not (inspect.isclass(cls) and issubclass(cls, nn.Module)):
        raise UnknownModelError(f"{path}:{class_name} is not a torch.nn.Module subclass")
    return cls


def _import_file(path: Path) -> object:
    """Run a user's model file as a module (it is their code; its failures are named as theirs)."""
    if not path.is_file():
        raise UnknownModelError(f"model file not found: {path} (expected --model path/to/file.py:ClassName)")
    module_name = f"srbench_user_{abs(hash(path.resolve()))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise UnknownModelError(f"cannot import {path}: not a Python source file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        with model_phase(str(path), "import"):
            spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def _classes_hint(module: object) -> str:
    found = sorted(n for n, o in vars(module).items() if inspect.isclass(o) and issubclass(o, nn.Module))
    return f"classes there: {', '.join(found)}" if found else "it defines no nn.Module class"


def _file_without_class(target: str) -> UnknownModelError:
    """``--model net.py`` (no ``:Class``): say to add the class, naming the ones the file defines."""
    module = _import_file(Path(target).expanduser())
    return UnknownModelError(f"--model {target} names a file but no class: add ':ClassName' ({_classes_hint(module)})")


def check_output_shape(output: torch.Tensor, lr_shape: tuple[int, ...], scale: int, name: str) -> None:
    """A model whose output is not ``scale`` times its input would make every metric meaningless."""
    expected = (lr_shape[0], 3, lr_shape[2] * scale, lr_shape[3] * scale)
    if tuple(output.shape) != expected:
        raise ModelSpecError(
            f"{name} returned shape {tuple(output.shape)} for input {tuple(lr_shape)}; expected {expected} "
            f"at x{scale} — check --scale"
        )


def verify_checkpoint(name: str, scale: int) -> dict:
    """Check one model's checkpoint: the sha256 against the official one, and a strict load into the net.

    Returns ``model, scale, path, status`` (as in :func:`catalogue`), ``loads`` (bool) and ``problem`` (a one-line
    reason or None). The file is hashed once, by the load itself.
    """
    spec = get_spec(name)
    ckpt = spec.checkpoint(scale)
    path = checkpoint_io.find_checkpoint(ckpt)
    row = {"model": spec.name, "scale": scale, "path": str(path) if path else None, "status": "missing",
           "loads": False, "problem": None}
    if path is None:
        row["problem"] = f"no checkpoint found ({_how_to_get(spec, scale)})"
        return row
    try:
        loaded = resolve_model(name, scale=scale, weights=path)
    except CheckpointError as exc:
        row.update(status=checkpoint_io.status_word(checkpoint_io.checkpoint_status(ckpt, path)), problem=str(exc))
        return row
    info = loaded.checkpoint
    row.update(status=checkpoint_io.status_word(checkpoint_io.CheckpointStatus(info.path, info.sha256, info.verified)), loads=True,
               problem=loaded.warnings[0] if loaded.warnings else None)
    return row
