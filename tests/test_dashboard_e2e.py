"""`ser demo` with its dashboard in a real terminal (tmux): what a person sees, and `q` to quit."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import LABELS, REPO

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (.ci/run installs it)")

DEMO_S = 34.6                 # length of the bundled recording


def wait_for(what: str, probe: Callable[[], str | None], timeout_s: float) -> str:
    """Poll ``probe`` until it returns a string; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = probe()
        if found is not None:
            return found
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")


def timeline_strip(screen: str) -> str:
    """The inside of the timeline's strip line ('' if the dashboard is not drawn yet)."""
    lines = screen.splitlines()
    title = next((i for i, line in enumerate(lines) if "─ timeline" in line), None)
    return lines[title + 1].strip("│ ") if title is not None and title + 1 < len(lines) else ""


class Terminal:
    """A 100x30 tmux pane running one command, kept (with what it printed) after the command exits."""

    def __init__(self, tmp_path: Path, command: list[str]) -> None:
        self.exit_file = tmp_path / "exit"
        conf = tmp_path / "tmux.conf"
        conf.write_text("set -g remain-on-exit on\n")
        self.tmux = ["tmux", "-S", str(tmp_path / "tmux.sock"), "-f", str(conf)]
        shell = f"{shlex.join(command)}; echo EXIT=$? > {shlex.quote(str(self.exit_file))}"
        subprocess.run([*self.tmux, "new-session", "-d", "-s", "ser", "-x", "100", "-y", "30", "-c", str(REPO),
                        "sh", "-c", shell], check=True, timeout=30)

    def screen(self) -> str:
        return subprocess.run([*self.tmux, "capture-pane", "-p", "-t", "ser"], capture_output=True, text=True,
                              timeout=30).stdout

    def press(self, key: str) -> str:
        """Press ``key``, wait for the command to exit and return its exit line."""
        subprocess.run([*self.tmux, "send-keys", "-t", "ser", key], check=True, timeout=30)
        wait_for("ser to exit", lambda: self.exit_file.read_text() if self.exit_file.exists() else None, 60)
        return self.exit_file.read_text().strip()

    def close(self) -> None:
        subprocess.run([*self.tmux, "kill-server"], capture_output=True, timeout=30)


def ser_command(*args: str) -> list[str]:
    ser = shutil.which("ser", path=str(Path(sys.executable).parent))
    return [ser, *args] if ser else [sys.executable, "-m", "realtime.cli", *args]


def test_demo_dashboard_in_tmux_and_q_quits(tmp_path: Path):
    terminal = Terminal(tmp_path, ser_command("demo"))
    try:
        def with_a_segment() -> str | None:
            text = terminal.screen()
            return text if timeline_strip(text) else None

        running = wait_for("a segment on the timeline", with_a_segment, timeout_s=90)
        for label in LABELS:
            assert re.search(rf"│ \w {label} +[█▏▎▍▌▋▊▉·]+ +\d\.\d\d +\d\.\d\d", running), label
        lines = running.splitlines()
        names = next(i for i, line in enumerate(lines) if re.search(r"female \d\.\d\d +\d\.\d\d male", line))
        split_bar = lines[names + 1].split("││")[1].strip("│ ")
        assert re.fullmatch(r"[█▏▎▍▌▋▊▉░]{20,}", split_bar)
        assert re.fullmatch(r"[nchsafdu ]+", timeline_strip(running))
        assert "demo.flac" in running and "model ser-ravdess" in running and "q quits" in running

        assert terminal.press("q") == "EXIT=0"
        final = terminal.screen()
        summary = re.search(r"summary: ([\d.]+) s of audio; (\d+) updates scored", final)
        assert summary, final
        assert float(summary[1]) < DEMO_S and int(summary[2]) > 0      # q stopped it before the recording ended
        assert "Traceback" not in final
    finally:
        terminal.close()


PORTAUDIO_LINE = "Expression 'alsa_snd_pcm_poll_descriptors_revents( self->pcm, pfds, self->nfds, &revents )' failed"


def test_what_a_c_library_writes_to_stderr_goes_above_the_dashboard_whole(tmp_path: Path):
    """PortAudio writes its ALSA errors straight to descriptor 2 as a device dies; they used to land inside
    the frame, and the next frames were drawn below the debris."""
    write_later = (f"import os, sys, threading; from realtime import cli; "
                   f"threading.Timer(3.0, os.write, (2, {(PORTAUDIO_LINE + chr(10)).encode()!r})).start(); "
                   f"sys.exit(cli.main(['demo']))")
    terminal = Terminal(tmp_path, [sys.executable, "-c", write_later])
    try:
        def two_seconds_after_the_line() -> str | None:
            text = terminal.screen()
            return text if re.search(r"elapsed 0:(0[5-9]|[1-5]\d)", text) else None

        lines = wait_for("5 s of the dashboard", two_seconds_after_the_line, timeout_s=90).splitlines()
        assert lines.count(PORTAUDIO_LINE) == 1, "\n".join(lines)
        header = [i for i, line in enumerate(lines) if "ser speech emotion" in line]
        assert len(header) == 1 and lines.index(PORTAUDIO_LINE) < header[0], "\n".join(lines)
        assert terminal.press("q") == "EXIT=0"
    finally:
        terminal.close()
