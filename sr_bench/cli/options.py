"""Option types shared by several commands, declared once so every command spells them the same way."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from sr_bench.cli import output

if TYPE_CHECKING:
    from sr_bench.models import LoadedModel, LoadOptions

ModelOpt = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        help="Zoo model name (see 'srbench models') or a user model as path/to/file.py:ClassName.",
    ),
]
ScaleOpt = Annotated[Optional[int], typer.Option("--scale", "-s", min=1, help="Upscaling factor (default: the model's, x4).")]
WeightsOpt = Annotated[
    Optional[Path], typer.Option("--weights", "-w", help="Checkpoint file (.pth/.pt/.safetensors); overrides the search.")
]
DataRangeOpt = Annotated[
    Optional[float], typer.Option("--data-range", help="User models: input/output range, 1 or 255 (default: 1).")
]
ModelArgsOpt = Annotated[
    Optional[str], typer.Option("--model-args", help="User models: constructor kwargs as a JSON object.")
]
CheckpointKeyOpt = Annotated[
    Optional[str],
    typer.Option("--checkpoint-key", help="Checkpoint entry holding the state dict (e.g. params); 'none' = the top level. Default: params_ema, params, state_dict, model."),
]
NoStrictOpt = Annotated[
    bool, typer.Option("--no-strict", help="Load with strict=False; missing/unexpected keys are counted in the record.")
]
AfterLoadOpt = Annotated[
    Optional[list[str]],
    typer.Option("--after-load", help="After loading, call METHOD() on every submodule that has it (e.g. switch_deploy); repeatable."),
]
DeviceOpt = Annotated[str, typer.Option("--device", "-d", help="auto, cpu, cuda or cuda:N.")]
ResultsOpt = Annotated[
    Optional[Path], typer.Option("--results", help="Results folder for run records (default: $SRBENCH_RESULTS or ./results).")
]
JsonOpt = Annotated[Optional[Path], typer.Option("--json", help="Also write the full record to this JSON file.")]
ExecOpt = Annotated[
    str,
    typer.Option(
        "--exec",
        help="Execution mode: auto, eager, channels_last, bf16, fp16, compile, retain_heap, or a combination like channels_last+bf16.",
    ),
]
ThreadsOpt = Annotated[Optional[int], typer.Option("--threads", min=1, help="CPU threads (default: all cores).")]
ProtocolOpt = Annotated[
    str, typer.Option("--protocol", help="robust (default), or ntire2023 / ntire2024 to reproduce the official numbers.")
]


def load_cli_model(
    model: str,
    scale: int | None,
    weights: Path | None,
    data_range: float | None,
    model_args: str | None,
    device: str = "cpu",
    require_weights: bool = False,
    load: LoadOptions | None = None,
) -> LoadedModel:
    """Resolve a model from the shared options and show its notices on stderr."""
    from sr_bench.models import resolve_model  # torch: imported when a command needs a model, not at start-up

    loaded = resolve_model(
        model,
        scale=scale,
        weights=weights,
        device=device,
        data_range=data_range,
        model_args=model_args,
        require_weights=require_weights,
        load=load,
    )
    for message in loaded.notices:
        output.notice(message)
    for message in loaded.warnings:
        output.warning(message)
    return loaded


def load_options(checkpoint_key: str | None, no_strict: bool, after_load: list[str] | None) -> LoadOptions:
    """The loading flags (--checkpoint-key, --no-strict, --after-load) as one value for resolve_model."""
    from sr_bench.models import LoadOptions  # torch: imported when a command needs a model, not at start-up

    return LoadOptions(checkpoint_key=checkpoint_key, strict=not no_strict, after_load=tuple(after_load or ()))
