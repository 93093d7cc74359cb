"""Single-key commands from a terminal, read on a background thread."""

from __future__ import annotations

import logging
import os
import select
import signal
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
    background, is never read. Ctrl-Z gives the shell its terminal back as it was (and calls
    ``on_suspend``) before the job stops; ``fg`` puts it back in cbreak mode (and calls ``on_resume``).

    Parameters
    ----------
    stream : file object
        Usually ``sys.stdin``.
    on_quit : callable
        Called on the reader thread when ``q`` is pressed (a microphone's ``stop``, which must not
        wait for the next block to be seen).
    on_suspend, on_resume : callable
        Called when the job is stopped (Ctrl-Z) and continued (the dashboard shows, then hides, the cursor).
    """

    def __init__(self, stream: IO[str] | None, on_quit: Callable[[], None] = lambda: None,
                 on_suspend: Callable[[], None] = lambda: None, on_resume: Callable[[], None] = lambda: None) -> None:
        self.quit = threading.Event()
        self._on_quit = on_quit
        self._on_suspend, self._on_resume = on_suspend, on_resume
        self._handlers: dict[int, object] = {}
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
        if not _in_foreground(fd):    # `ser demo &`: setting the terminal's mode would stop the job (SIGTTOU)
            log.info("started in the background: keys disabled, use Ctrl-C or SIGTERM to stop")
            return self
        self._saved = termios.tcgetattr(fd)
        tty.setcbreak(fd)
        if threading.current_thread() is threading.main_thread():   # where signal handlers can be set
            self._handlers = {signal.SIGTSTP: signal.signal(signal.SIGTSTP, self._suspend),
                              signal.SIGCONT: signal.signal(signal.SIGCONT, self._continued)}
        self._thread = threading.Thread(target=self._read, args=(fd,), name="ser-keys", daemon=True)
        self._thread.start()
        return self

    def _suspend(self, signum: int, frame: object) -> None:
        """Ctrl-Z: restore the terminal as the shell left it, then stop as the default action would."""
        import termios

        termios.tcsetattr(self._stream.fileno(), termios.TCSADRAIN, self._saved)
        self._on_suspend()
        signal.signal(signal.SIGTSTP, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTSTP)       # stopped here until the shell continues the job
        signal.signal(signal.SIGTSTP, self._suspend)

    def _continued(self, signum: int, frame: object) -> None:
        """``fg`` (or ``bg``): back in the foreground, keys are read unbuffered again."""
        import tty

        fd = self._stream.fileno()
        if _in_foreground(fd):
            tty.setcbreak(fd)
            self._on_resume()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        for signum, handler in self._handlers.items():
            signal.signal(signum, handler)
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
                if not _in_foreground(fd):     # after Ctrl-Z and `bg`: a read would stop the job (SIGTTIN)
                    self._stop.wait(POLL_S)
                    continue
                data = os.read(fd, 64)
            except OSError:       # the terminal went away: nothing more to read
                return
            if not data:
                return
            if any(key in QUIT_KEYS for key in data):
                self._on_quit()
                self.quit.set()


def _in_foreground(fd: int) -> bool:
    """Whether this process's group holds the terminal ``fd``; a terminal that is not this process's
    controlling one counts as held, since no job control stops a reader of it."""
    try:
        return os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        return True
