"""What every benchmark command shares: its entry point, its ``--json`` output and how a missing figure reads."""

from __future__ import annotations

import json
import math
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn


def run_command(name: str, main: Callable[[], int]) -> NoReturn:
    """Exit with ``main()``'s status. SIGTERM stops it as Ctrl-C does, with a KeyboardInterrupt, so ``with`` and
    ``finally`` blocks stop the processes it started; either ends it with one line, ``NAME: interrupted``, and
    status 130. Ctrl-C's handler is set too: a process started with it ignored (a script's ``cmd &``) has none."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        status = main()
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        status = 130
    raise SystemExit(status)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def write_json(path: Path, figures: dict) -> None:
    """Write ``figures`` as strict JSON: a missing figure (NaN or infinite) is null."""
    path.write_text(json.dumps(_finite(figures), indent=2, allow_nan=False))


def _finite(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def shown(value: float | None, spec: str = "") -> str:
    """``value`` formatted with ``spec``, or ``n/a`` for a missing figure (None or NaN)."""
    return "n/a" if value is None or not math.isfinite(value) else format(value, spec)
