"""Standard streams that are closed, or whose reader has gone: a run neither fails on them nor loses its output."""

from __future__ import annotations

import os
import sys


def reopen_closed_stderr() -> None:
    """With standard error closed (`2>&-`), or left open read-only by a wrapper script, send messages to
    /dev/null: a run must not fail on its diagnostics, nor write them to stdout or to a file it opened."""
    if sys.platform != "win32":
        import fcntl
        try:
            writable = os.O_RDONLY != fcntl.fcntl(2, fcntl.F_GETFL) & os.O_ACCMODE
        except OSError:
            writable = False
        if not writable:
            devnull = os.open(os.devnull, os.O_WRONLY)
            if devnull != 2:
                os.dup2(devnull, 2)
                os.close(devnull)
    if sys.stderr is None:      # closed when Python started: print(file=None) would write to stdout
        sys.stderr = open(os.devnull, "w")


def discard_stdout() -> None:
    """Send what is left for a standard output whose reader has gone to nowhere, so exiting cannot fail on it."""
    try:
        target = sys.stdout.fileno()
    except (OSError, ValueError, AttributeError):   # stdout without a file descriptor (None, or captured)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, target)
    os.close(devnull)
