"""All terminal output goes through here: data on stdout, notices and errors on stderr.

Library modules never print; commands hand their results to these helpers. Messages are printed with
markup off and soft wrapping, so a path with brackets stays intact and an error stays on one line.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.progress import Progress, ProgressColumn
from rich.text import Text

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def _line(prefix: str, style: str, message: str) -> None:
    text = Text()
    text.append(prefix, style=style)
    text.append(message)
    err.print(text, soft_wrap=True)


def error(message: str) -> None:
    """The one-line ``Error: ...`` every failure ends with."""
    _line("Error: ", "bold red", message)


def warning(message: str) -> None:
    _line("Warning: ", "yellow", message)


def notice(message: str) -> None:
    _line("Note: ", "cyan", message)


def info(message: str) -> None:
    """A status line for people (stderr, so stdout stays clean for data)."""
    err.print(Text(message), soft_wrap=True)


def progress(*columns: str | ProgressColumn, transient: bool) -> Progress:
    """A progress display on stderr, drawn only where stderr is a terminal.

    In a log or a pipe rich cannot redraw in place, so its frames (and the blank line a transient one leaves)
    would land before a failure's ``Error:`` line, which must be the first thing there.
    """
    return Progress(*columns, console=err, transient=transient, disable=not err.is_terminal)


def print_json(obj: Any) -> None:
    """Machine-readable output: plain JSON on stdout, no colour codes."""
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")
    sys.stdout.flush()


def raw(text: str) -> None:
    """Exact text on stdout (tabs and trailing spaces kept), e.g. the official results.txt format."""
    sys.stdout.write(text)
    sys.stdout.flush()
