"""Measurement protocols as data: warm-up, repeats, peak-memory reset and the FLOPs headline of each.

The official NTIRE protocols reproduce the challenge harness exactly (no warm-up, one forward per image, peak
memory never reset); ``robust`` is the sound default (bounded warm-up, repeats, peak memory reset before each
measured split). Torch-free, so configuration can be checked before anything heavy is imported.

    >>> get_protocol("ntire2024").repeats
    1
"""

from __future__ import annotations

from dataclasses import dataclass

from sr_bench.errors import UsageError


@dataclass(frozen=True)
class Protocol:
    """How one protocol measures runtime, memory and FLOPs; the official ones mirror the challenge harness."""

    name: str
    description: str
    warmup: int  # forwards run before measuring (each new input shape gets its own warm-up)
    warmup_max: int  # warm-up goes on past ``warmup`` until two forwards agree, up to this many ...
    warmup_budget_s: float  # ... or until this much warm-up time has passed
    repeats: int  # measured forwards per input (official: one per image)
    reset_peak_memory: bool  # reset the peak before each measured split (official: never, so splits accumulate)
    flops_headline: str  # the FLOPs convention shown in tables ("ntire2023" hooks or "fvcore")
    flops_report_all: bool  # also report every other convention beside the headline
    forces_eager: bool = True  # named protocols run the model as written: eager, NCHW, fp32
    dtype: str = "fp32"
    cudnn_benchmark: bool = False


PROTOCOLS: dict[str, Protocol] = {
    "robust": Protocol(
        name="robust",
        description="srbench default: bounded warm-up per input shape, repeats with median/IQR, memory reset per split",
        warmup=3,
        warmup_max=25,
        warmup_budget_s=5.0,
        repeats=10,
        reset_peak_memory=True,
        flops_headline="fvcore",
        flops_report_all=True,
        forces_eager=False,
    ),
    "ntire2023": Protocol(
        name="ntire2023",
        description="NTIRE 2023 harness: one forward per image, no warm-up, memory never reset, FLOPs by module hooks",
        warmup=0,
        warmup_max=0,
        warmup_budget_s=0.0,
        repeats=1,
        reset_peak_memory=False,
        flops_headline="ntire2023",
        flops_report_all=False,
    ),
    "ntire2024": Protocol(
        name="ntire2024",
        description="NTIRE 2024+ harness: one forward per image, no warm-up, memory never reset, FLOPs by fvcore",
        warmup=0,
        warmup_max=0,
        warmup_budget_s=0.0,
        repeats=1,
        reset_peak_memory=False,
        flops_headline="fvcore",
        flops_report_all=False,
    ),
}


def get_protocol(name: str) -> Protocol:
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise UsageError(f"unknown protocol {name!r}: use one of {', '.join(PROTOCOLS)}") from None
