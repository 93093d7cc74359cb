"""The training package's one progress bar."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


def progress_bar(label: str, enabled: bool = True) -> Progress:
    """A transient bar on stderr, where ser-train writes everything: label, bar, done/total and time left;
    ``enabled=False`` hides it."""
    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    transient=True, disable=not enabled, console=Console(stderr=True))
