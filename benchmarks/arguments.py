"""Argument types shared by the benchmark commands: bad input is a usage error before anything is measured."""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from realtime.scorer import SHIPPED_MODELS
from realtime.sources import SourceError

INPUT_SUFFIXES = (".wav", ".flac", ".ogg", ".aiff", ".aif", ".onnx")   # an existing such file is never overwritten
MINUTES = (0.01, 60.0)        # a benchmark stream is held in memory (3.8 MB a minute)


def number(text: str) -> float:
    """``text`` as a float; anything else is a usage error saying so."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text}") from None


def float_range(low: float, high: float, zero: bool = False) -> Callable[[str], float]:
    """A type for a number from ``low`` to ``high`` (or 0, if ``zero``); the message gives the bounds."""
    def parse(text: str) -> float:
        value = number(text)
        if not (low <= value <= high or zero and value == 0):   # NaN fails every comparison
            raise argparse.ArgumentTypeError(f"expected {'0 or ' if zero else ''}a number from {low:g} to {high:g}, "
                                             f"got {text}")
        return value
    return parse


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or a positive whole number, got {text}")
    return value


def stream_arguments(parser: argparse.ArgumentParser) -> None:
    """``--data``, ``--minutes`` and ``--reps``: the stream a side-by-side benchmark builds, and its repetitions."""
    parser.add_argument("--data", type=Path,
                        help="folder of speech recordings (default ../shared/data; else the bundled demo)")
    parser.add_argument("--minutes", type=float_range(*MINUTES), default=10.0,
                        help=f"length of the stream, {MINUTES[0]:g}-{MINUTES[1]:g} (held in memory; default 10)")
    parser.add_argument("--reps", type=positive_int, default=5, help="interleaved repetitions, 1 or more (default 5)")


def overwrites_input(path: Path) -> bool:
    """Whether writing ``path`` would destroy an input: an existing audio file, model or model card (a .json beside a
    same-named .onnx), or anything in the shipped models' folder."""
    target = path.resolve()   # a link is judged by what it points to
    if SHIPPED_MODELS.resolve() in target.parents:
        return True
    suffix = target.suffix.lower()
    card = suffix == ".json" and target.with_suffix(".onnx").is_file()
    return target.is_file() and (suffix in INPUT_SUFFIXES or card)


def output_file(text: str) -> Path:
    """A path the results can be written to, checked before hours of measuring: an existing file is opened for
    writing (not truncated), a new one is tried as a temporary file in its folder (``os.access`` says yes to root)."""
    path = Path(text)
    folder = path.absolute().parent
    if not text or path.is_dir() or not folder.is_dir():
        raise argparse.ArgumentTypeError(f"cannot write {path}: give a file in an existing folder")
    if overwrites_input(path):
        raise argparse.ArgumentTypeError(f"{path}: would overwrite an audio file or a model, or write among the "
                                         "shipped models; choose another path")
    try:
        if path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        else:
            tempfile.TemporaryFile(dir=folder).close()
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot write {path}: {exc.strerror}") from None
    return path


def refuse(parser: argparse.ArgumentParser, exc: ValueError) -> NoReturn:
    """End the command for bad input: a file that will not open (a :class:`SourceError`) is one line naming it; any
    other problem (a folder without audio) is a usage error."""
    if isinstance(exc, SourceError):
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    parser.error(str(exc))
