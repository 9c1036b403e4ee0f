"""One exception family for everything a user can get wrong.

Library code raises these; the CLI prints ``Error: <message>`` on stderr and exits non-zero without a
traceback. Each message is one line that says what is wrong and how to fix it.
"""

from __future__ import annotations


class SrBenchError(Exception):
    """Base class: the message is the complete one-line text shown to the user.

    Under torchrun ``where`` names the rank (and device) that hit it, shown before the message; ``message`` is the
    text without it, which ranks that hit the same problem share (:mod:`sr_bench.cli.rank_errors` prints it once).
    """

    exit_code: int = 1
    where: str | None = None  # e.g. "rank 1/2 (cuda:1)"

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message

    @property
    def message(self) -> str:
        return super().__str__()


class UnknownModelError(SrBenchError):
    """A model name that is neither registered nor a ``file.py:Class`` path."""


class ModelSpecError(SrBenchError):
    """A model spec or a request that does not fit it (unsupported scale, bad kwargs, bad user model)."""


class CheckpointError(SrBenchError):
    """A checkpoint that is missing, corrupt, unsafe or does not fit the architecture."""


class DownloadError(SrBenchError):
    """A download that failed or delivered the wrong bytes; nothing half-written is left behind."""


class DatasetError(SrBenchError):
    """A dataset that is missing, empty, unreadable or inconsistent."""


class NonFiniteOutputError(DatasetError):
    """A model output holding NaN or Inf: that image fails like a bad image (skippable with ``--skip-bad``).

    ``reason`` is the message without the advice, for the record of a skipped image.
    """

    def __init__(self, reason: str, advice: str) -> None:
        super().__init__(f"{reason}; {advice}")
        self.reason = reason


class MetricInputError(SrBenchError, ValueError):
    """Images that cannot be compared: different shapes, not (3, H, W), or too small for the border crop."""


class DeviceError(SrBenchError):
    """A device that does not exist, is unavailable, or ran out of memory."""


class ResultsError(SrBenchError):
    """A results folder or record that cannot be read or written."""


class UsageError(SrBenchError):
    """Options that are malformed or cannot be combined."""

    exit_code = 2
