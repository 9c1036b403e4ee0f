"""The root ``srbench`` app: mounts one module per command noun and turns failures into one line.

Usage::

    srbench models                      # what the zoo holds and which checkpoints are present
    srbench profile --model lgvan       # params, FLOPs, activations, runtime, memory
    srbench eval --model lgvan --dataset set5
    srbench report --format md
    srbench challenge profile NTIRE2025_ESR   # every team of a challenge repository

Every ``SrBenchError`` (and every usage error) is printed as ``Error: <message>`` on stderr with a
non-zero exit and no traceback; ``SRBENCH_DEBUG=1`` shows the traceback of unexpected failures. Under torchrun a
failure every rank shares is printed once, by rank 0 (:mod:`sr_bench.cli.rank_errors`).
"""

from __future__ import annotations

import os
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from sr_bench import __version__
from sr_bench.cli import challenge, datasets, env, models, output, profile, report, upscale, weights
from sr_bench.cli import eval as evaluate
from sr_bench.cli.rank_errors import report as report_error
from sr_bench.errors import SrBenchError

DEBUG_ENV = "SRBENCH_DEBUG"
# The usage-error base class of whichever click Typer runs on (Typer >= 0.2x vendors its own copy).
_UsageError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


class _OneLineErrors(TyperGroup):
    """Catches errors at the root so every command reports them the same way."""

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> typer.Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except _UsageError as exc:
            _usage_error(exc)

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort):
            raise
        except _UsageError as exc:
            _usage_error(exc)
        except SrBenchError as exc:
            _fail(exc.message, exc.exit_code, exc.where)
        except KeyboardInterrupt:
            _fail("interrupted; finished work was kept (eval runs continue with --resume)", 130)
        except Exception as exc:
            if os.environ.get(DEBUG_ENV):
                raise
            _fail(f"unexpected {type(exc).__name__}: {exc} — this is a bug in srbench; "
                  f"rerun with {DEBUG_ENV}=1 for the traceback and report it", 3)


def _usage_error(exc: Exception) -> NoReturn:
    ctx = getattr(exc, "ctx", None)
    where = ctx.command_path if ctx is not None else "srbench"
    _fail(f"{exc.format_message()} (see '{where} --help')", 2)


def _fail(message: str, code: int, where: str | None = None) -> NoReturn:
    """Print ``Error: ...`` and exit with ``code``; under torchrun a failure every rank shares is printed once."""
    report_error(message, code, where)
    raise typer.Exit(code) from None


app = typer.Typer(
    cls=_OneLineErrors,
    name="srbench",
    help="Benchmark efficient image super-resolution models the NTIRE ESR way: complexity, runtime, memory, quality.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        output.out.print(f"srbench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", "-V", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """srbench: trustworthy numbers for efficient super-resolution models."""


app.command("models", help=models.models_ls.__doc__)(models.models_ls)
app.add_typer(weights.app, name="weights")
app.command("upscale", help=upscale.upscale.__doc__)(upscale.upscale)
app.command("profile", help=profile.profile.__doc__)(profile.profile)
app.command("eval", help=evaluate.eval_cmd.__doc__)(evaluate.eval_cmd)
app.add_typer(datasets.app, name="datasets")
app.command("report", help=report.report.__doc__)(report.report)
app.command("env", help=env.env_show.__doc__)(env.env_show)
app.add_typer(challenge.app, name="challenge")


def main() -> None:
    """Console-script entry point."""
    app(prog_name="srbench")
