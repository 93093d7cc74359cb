"""Descriptor 2 turned into lines while the dashboard draws, and given back after."""

from __future__ import annotations

import io
import os
import subprocess
import sys

from realtime.stderr_lines import StderrLines


def identity(fd: int) -> tuple[int, int]:
    status = os.fstat(fd)
    return status.st_dev, status.st_ino


def test_what_is_written_to_descriptor_2_arrives_as_whole_lines_and_the_descriptor_comes_back(capfd):
    got: list[str] = []
    before = identity(2)
    lines = StderrLines(got.append)
    with lines:
        assert identity(2) != before
        os.write(2, b"first\r\nsecond ")
        os.write(2, b"half\nno newline at the end")
        print("through the terminal", file=lines.terminal, flush=True)
    assert got == ["first", "second half", "no newline at the end"]    # all of it, by the time exit returns
    assert identity(2) == before
    os.write(2, b"after\n")
    lines.close()
    assert lines.terminal.closed and capfd.readouterr().err == "through the terminal\nafter\n"


def test_without_a_descriptor_behind_stderr_nothing_is_redirected(monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    before = identity(2)
    lines = StderrLines(lambda line: None)
    with lines:
        assert identity(2) == before and lines.terminal is None
    lines.close()


def test_a_child_that_keeps_the_pipe_open_does_not_hold_up_the_exit():
    """A sound server autospawned meanwhile inherits descriptor 2, and with it the pipe's write end."""
    lines = StderrLines(lambda line: None)
    with lines:
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert lines._reader.is_alive()    # still waiting for the child's end of the pipe
        lines.close()
        assert not lines.terminal.closed   # left open for the reader
    finally:
        child.kill()
        child.wait()
    lines._reader.join(10)
    assert not lines._reader.is_alive()
