"""Single-key commands from a terminal, read on a background thread."""

from __future__ import annotations

import logging
import os
import select
import threading
from collections.abc import Callable
from types import TracebackType
from typing import IO

log = logging.getLogger(__name__)

QUIT_KEYS = b"qQ"
POLL_S = 0.1                  # how often the reader thread checks whether it should stop


class KeyReader:
    """Watch a terminal for ``q`` while a run is in progress.

    On entering, a TTY ``stream`` is put in cbreak mode (keys arrive unbuffered and
    unechoed; Ctrl-C still sends SIGINT) and a daemon thread reads it.
    On exiting, the thread stops and the terminal settings are restored. A stream
    that is not a TTY (a pipe, a file, /dev/null, or none at all), or the terminal of a job in the
    background, is never read.

    Parameters
    ----------
    stream : file object
        Usually ``sys.stdin``.
    on_quit : callable
        Called on the reader thread when ``q`` is pressed (a microphone's ``stop``, which must not
        wait for the next block to be seen).
    """

    def __init__(self, stream: IO[str] | None, on_quit: Callable[[], None] = lambda: None) -> None:
        self.quit = threading.Event()
        self._on_quit = on_quit
        self._stream = stream
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._saved: list | None = None

    def __enter__(self) -> KeyReader:
        try:
            import termios
            import tty
        except ImportError:
            log.info("no termios on this platform: keys disabled, use Ctrl-C to stop")
            return self
        if self._stream is None or not self._stream.isatty():   # None: the process was started with stdin closed
            return self
        fd = self._stream.fileno()
        try:
            background = os.tcgetpgrp(fd) != os.getpgrp()
        except OSError:   # not this process's controlling terminal, so no job control stops it
            background = False
        if background:    # `ser demo &`: setting the terminal's mode would stop the job (SIGTTOU)
            log.info("started in the background: keys disabled, use Ctrl-C or SIGTERM to stop")
            return self
        self._saved = termios.tcgetattr(fd)
        tty.setcbreak(fd)
        self._thread = threading.Thread(target=self._read, args=(fd,), name="ser-keys", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        try:
            if self._thread is not None:
                self._thread.join()
        finally:
            if self._saved is not None:
                import termios

                termios.tcsetattr(self._stream.fileno(), termios.TCSADRAIN, self._saved)

    def _read(self, fd: int) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([fd], [], [], POLL_S)
                if not ready:
                    continue
                data = os.read(fd, 64)
            except OSError:       # the terminal went away: nothing more to read
                return
            if not data:
                return
            if any(key in QUIT_KEYS for key in data):
                self._on_quit()
                self.quit.set()
