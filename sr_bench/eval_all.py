"""Several models over several datasets: one record per (model, dataset), from one :class:`EvalConfig`.

Every dataset is found and validated before any model is loaded, and each model's datasets are checked once
per scale before it runs anything, so a missing file stops the run before an hour of work rather than after.
"""

from __future__ import annotations

from dataclasses import replace

from sr_bench import paths
from sr_bench import weights as checkpoint_io
from sr_bench.datasets import BadImage, CheckedPair, Dataset, check_pairs, custom_dataset, locate_dataset, resolve_dataset
from sr_bench.errors import CheckpointError, UsageError
from sr_bench.eval_config import EvalConfig, EvalOptions
from sr_bench.evaluate import EvalEvent, EvalResult, ProgressFn, evaluate, prepare_run
from sr_bench.execution import threads_notice
from sr_bench.models import resolve_model
from sr_bench.timing import resolve_device
from sr_bench.zoo import get_spec, list_models

DEFAULT_DATASET = "set5"  # with no --dataset: built into srbench, so `srbench eval --model M` always runs


def available_models(scale: int | None = None) -> list[str]:
    """Zoo models whose checkpoint for ``scale`` (default: each model's own) is on disk."""
    names = []
    for name in list_models():
        spec = get_spec(name)
        s = spec.default_scale if scale is None else scale
        if s in spec.scales and checkpoint_io.find_checkpoint(spec.checkpoint(s)) is not None:
            names.append(name)
    return names


def evaluate_all(config: EvalConfig, progress: ProgressFn | None = None) -> list[EvalResult]:
    """Evaluate every model on every dataset of ``config`` (one record each); no models means every zoo model
    with a checkpoint here. All datasets are found and validated for a model before it runs anything."""
    notify = progress or (lambda event: None)
    options = config.options
    if not config.datasets and config.hr_dir is None:
        config = replace(config, datasets=[DEFAULT_DATASET])
        _, hr_found, _ = locate_dataset(DEFAULT_DATASET, config.data_root)
        where = "srbench's built-in copy" if hr_found.is_relative_to(paths.builtin_data_root()) else str(hr_found.parent)
        notify(EvalEvent("notice", message=f"no --dataset given: evaluating on {DEFAULT_DATASET} ({where}); "
                                           "pass --dataset NAME for another set"))
    for name in config.datasets:  # unknown or missing sets fail before any model is loaded
        locate_dataset(name, config.data_root)
    names = config.models or available_models(config.scale)
    if not names:
        raise CheckpointError(
            "no zoo model has its checkpoint here: pass --model, run 'srbench weights pull NAME', or set SRBENCH_WEIGHTS"
        )
    if config.weights is not None and len(names) > 1:
        raise UsageError("--weights applies to one model: pass a single --model with it")
    torch_device = resolve_device(config.device)
    results = []
    sets_by_scale: dict[int, list] = {}
    for name in names:
        loaded = resolve_model(name, scale=config.scale, weights=config.weights, device=torch_device,
                               data_range=config.data_range, model_args=config.model_args, require_weights=True,
                               load=config.load)
        for message in loaded.notices + loaded.warnings:
            notify(EvalEvent("notice", loaded.name, message=message))
        if loaded.scale not in sets_by_scale:  # resolving + checking every pair reads every file header
            sets_by_scale[loaded.scale] = _prepare_sets(config, loaded.scale)
            for dataset, _ in sets_by_scale[loaded.scale]:  # once per dataset, not once per model
                for message in dataset.notices:
                    notify(EvalEvent("notice", loaded.name, dataset.name, message=message))
        sets = sets_by_scale[loaded.scale]
        run = prepare_run(loaded, torch_device, options)
        if run.probe and run.probe.get("notice"):  # --exec auto fell back to eager because the model's code failed
            notify(EvalEvent("notice", loaded.name, message=run.probe["notice"]))
        if message := threads_notice(options.threads, run.mode):
            notify(EvalEvent("notice", loaded.name, message=message))
        for dataset, checked in sets:
            results.append(evaluate(loaded, dataset, torch_device, options, checked=checked, prepared=run,
                                    progress=progress))
    return results


def _prepare_sets(config: EvalConfig,
                  scale: int) -> list[tuple[Dataset, tuple[list[CheckedPair], list[BadImage]]]]:
    options: EvalOptions = config.options
    sets = [resolve_dataset(n, config.data_root, scale) for n in config.datasets]
    if config.hr_dir is not None:
        sets.append(custom_dataset(config.hr_dir, config.lr_dir, scale))
    return [(ds, check_pairs(ds.pairs[: options.limit], scale, skip_bad=options.skip_bad)) for ds in sets]
