"""One thread for numpy, BLAS and numba in the benchmark process (onnxruntime's comes from the Scorer); import
before numpy."""

from __future__ import annotations

import os

from realtime.threads import THREAD_VARS


def pin_one_thread() -> dict[str, str]:
    """Set every thread variable to 1; return the environment as it was, for `ser` subprocesses."""
    before = dict(os.environ)
    os.environ.update({name: "1" for name in THREAD_VARS})
    return before


def as_user_runs_it(env: dict[str, str], user_env: dict[str, str]) -> dict[str, str]:
    """``env`` with the thread variables restored to the user's own (unpinned) values."""
    restored = {key: value for key, value in env.items() if key not in THREAD_VARS}
    restored.update({name: user_env[name] for name in THREAD_VARS if name in user_env})
    return restored
