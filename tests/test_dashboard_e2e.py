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


def test_demo_dashboard_in_tmux_and_q_quits(tmp_path: Path):
    ser = shutil.which("ser", path=str(Path(sys.executable).parent))
    command = shlex.join([ser, "demo"] if ser else [sys.executable, "-m", "realtime.cli", "demo"])
    exit_file = tmp_path / "exit"
    conf = tmp_path / "tmux.conf"
    conf.write_text("set -g remain-on-exit on\n")    # keep the pane (and the summary) after `ser` exits
    tmux = ["tmux", "-S", str(tmp_path / "tmux.sock"), "-f", str(conf)]

    def screen() -> str:
        return subprocess.run([*tmux, "capture-pane", "-p", "-t", "ser"], capture_output=True, text=True,
                              timeout=30).stdout

    subprocess.run([*tmux, "new-session", "-d", "-s", "ser", "-x", "100", "-y", "30", "-c", str(REPO),
                    "sh", "-c", f"{command}; echo EXIT=$? > {shlex.quote(str(exit_file))}"], check=True, timeout=30)
    try:
        def with_a_segment() -> str | None:
            text = screen()
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

        subprocess.run([*tmux, "send-keys", "-t", "ser", "q"], check=True, timeout=30)
        wait_for("ser to exit", lambda: exit_file.read_text() if exit_file.exists() else None, timeout_s=60)
        assert exit_file.read_text().strip() == "EXIT=0"
        final = screen()
        summary = re.search(r"summary: ([\d.]+) s of audio; (\d+) updates scored", final)
        assert summary, final
        assert float(summary[1]) < DEMO_S and int(summary[2]) > 0      # q stopped it before the recording ended
        assert "Traceback" not in final
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True, timeout=30)
