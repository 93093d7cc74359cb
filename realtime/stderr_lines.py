"""What C libraries write straight to file descriptor 2 (PortAudio's ALSA errors as a device dies, ALSA's
own chatter), turned into whole lines for the dashboard to print above its frame instead of into it."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from typing import IO

READER_WAIT_S = 1.0     # a child process that inherited descriptor 2 (a sound server autospawned) keeps the
                        # pipe open: then the reader is left running, and the terminal open for it


class StderrLines:
    """While entered, descriptor 2 is a pipe whose lines go to ``emit``, one call per line, from a thread.

    :attr:`terminal` writes where descriptor 2 went before (open from construction to :meth:`close`),
    so the dashboard can keep drawing there. On exit descriptor 2 is restored and every line written
    before has been emitted. Without a descriptor behind ``sys.stderr`` (a test's capture) there is no
    terminal and entering changes nothing.
    """

    def __init__(self, emit: Callable[[str], None]) -> None:
        self._emit = emit
        self._saved: int | None = None
        self._reader: threading.Thread | None = None
        try:
            fd = sys.stderr.fileno()
        except (AttributeError, OSError, ValueError):
            self.terminal: IO[str] | None = None
            return
        self.terminal = open(os.dup(fd), "w", encoding=sys.stderr.encoding or "utf-8", errors="replace",
                             buffering=1)

    def __enter__(self) -> StderrLines:
        if self.terminal is None:
            return self
        sys.stderr.flush()
        read, write = os.pipe()
        self._saved = os.dup(2)
        os.dup2(write, 2)
        os.close(write)
        self._reader = threading.Thread(target=self._forward, args=(read,), name="stderr-lines", daemon=True)
        self._reader.start()
        return self

    def _forward(self, read: int) -> None:
        with open(read, "rb") as pipe:
            for line in pipe:
                self._emit(line.decode(errors="replace").rstrip("\r\n"))

    def __exit__(self, *exc: object) -> None:
        if self._saved is not None:
            sys.stderr.flush()
            os.dup2(self._saved, 2)        # closes our end of the pipe: the reader sees its end
            os.close(self._saved)
            self._saved = None
            self._reader.join(READER_WAIT_S)

    def close(self) -> None:
        """Close :attr:`terminal`, unless a reader left running may still print there."""
        if self.terminal is not None and not (self._reader and self._reader.is_alive()):
            self.terminal.close()
