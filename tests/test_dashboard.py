"""The dashboard frame (rendered from fixed snapshots), its key reader and its wiring into `ser`."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from rich.style import Style

from realtime import cli
from realtime.dashboard import Frame, label_codes, timeline_cells
from realtime.keys import KeyReader
from realtime.monitor import Monitor, Snapshot
from realtime.sources import SourceStats
from tests.conftest import LABELS

SMOOTHED = dict(zip(LABELS, (0.05, 0.04, 0.61, 0.06, 0.12, 0.05, 0.03, 0.04)))
LATEST = dict(zip(LABELS, (0.02, 0.03, 0.72, 0.04, 0.10, 0.04, 0.02, 0.03)))
TIMELINE = ((20.0, 22.5, "neutral"), (30.0, 33.0, "happy"), (40.2, 41.0, "angry"), (50.0, 56.0, "sad"))
SNAPSHOT = Snapshot(
    source="demo.flac (16000 Hz, 1 ch, 34.6 s)", model="ser-ravdess", labels=LABELS, gender_labels=("female", "male"),
    sample_rate=16000, elapsed_s=75.2, position_s=75.0, duration_s=None, emotion_smoothed=SMOOTHED,
    emotion_latest=LATEST, gender_smoothed={"female": 0.73, "male": 0.27}, leading="happy", in_speech=True,
    level_dbfs=-23.4, peak_dbfs=-6.1, clipping=False, window_s=1.8, timeline=TIMELINE, windows=42,
    latency_p50_ms=0.42, latency_p95_ms=1.23, realtime_factor=0.031, dropped_blocks=0, overflows=0,
    behind_s=None, adapting=True, adapted_windows=12)
SGR = re.compile(r"\x1b\[([0-9;]*)m")


def frame(snapshot: Snapshot, width: int = 100, no_color: bool = False, height: int = 25,
          fit: bool = True) -> tuple[str, str, str]:
    """The frame as plain text, as recorded with styles, and as written to the terminal."""
    screen = io.StringIO()
    out = Console(record=True, width=width, height=height, force_terminal=True, color_system="truecolor",
                  no_color=no_color, file=screen)
    out.print(Frame(snapshot, fit=fit))
    return out.export_text(clear=False), out.export_text(styles=True), screen.getvalue()


def styled(text: str, style: str) -> str:
    """``text`` as a truecolor terminal shows it in ``style``."""
    return Style.parse(style).render(text)


def row(plain: str, label: str) -> str:
    """The emotion panel's line for ``label``, up to the panel's right border."""
    line = next(line for line in plain.splitlines() if line.startswith(f"│ {label_codes(LABELS)[label]} {label} "))
    return line[:line.index("│", 1) + 1]


def test_emotion_panel_shows_every_label_with_its_bar_values_and_colour():
    plain, ansi, _ = frame(SNAPSHOT)
    for label in LABELS:
        line = row(plain, label)
        assert f"{SMOOTHED[label]:.2f} {LATEST[label]:.2f}" in line
    assert row(plain, "happy").count("█") > row(plain, "angry").count("█") > row(plain, "disgust").count("█")
    assert styled("happy    ", "bold reverse yellow") in ansi          # the leading label is highlighted
    assert " HAPPY " in plain.splitlines()[4]                           # and named in the panel title
    assert styled("angry    ", "red") in ansi and styled("████▏", "red") in ansi
    assert styled(" 0.72", "dim") in ansi                                # the latest raw value, faint
    assert styled("u", "bold black on dark_orange") in ansi              # surprised has its own code and colour


def test_header_gender_activity_and_footer():
    plain, ansi, _ = frame(dataclasses.replace(SNAPSHOT, duration_s=34.6))
    assert "demo.flac (16000 Hz, 1 ch, 34.6 s)  75.0 / 34.6 s  16 kHz" in plain and "elapsed 1:15" in plain
    assert "model ser-ravdess: neutral calm happy sad angry fearful disgust surprised" in plain
    assert "female 0.73" in plain and "0.27 male" in plain
    gender_bar = next(line for line in plain.splitlines() if "░" in line)
    assert gender_bar.count("█") > gender_bar.count("░") > 0
    assert styled(" SPEECH ", "bold reverse green") in ansi and "window 1.8 s" in plain
    assert "level -23 dBFS  peak -6" in plain and "┃" in plain and "CLIPPING" not in plain
    assert ("42 updates · latency p50/p95 0.4/1.2 ms · RTF 0.031 · dropped 0 · overflows 0 · adapted 12 windows"
            in plain)
    assert styled("dropped 0", "bold reverse red") not in ansi


def test_a_long_source_name_is_shortened_before_the_position():
    """At 80 columns a call-centre file name used to push the position and rate out of view."""
    long = "a_rather_long_recording_name_from_the_call_centre_2024-05-01_customer_42.wav (16000 Hz, 1 ch, 600.0 s)"
    plain, _, _ = frame(dataclasses.replace(SNAPSHOT, source=long, duration_s=600.0))
    top = plain.splitlines()[1]
    assert "a_rather_long_recording_name" in top and "…  75.0 / 600.0 s  16 kHz" in top and "elapsed 1:15" in top


def test_a_short_terminal_gives_up_the_timeline_then_the_header_but_keeps_the_counters():
    """At 18 rows the footer, with its dropped-block counter, used to be cut off below the timeline."""
    parts = ("ser speech emotion", "emotion rolling", "timeline last", "dropped 3")
    snapshot = dataclasses.replace(SNAPSHOT, dropped_blocks=3)
    for height, shown in ((25, parts), (18, parts[:2] + parts[3:]), (14, parts[1:2] + parts[3:])):
        plain, _, _ = frame(snapshot, width=80, height=height)
        assert [part for part in parts if part in plain] == list(shown) and len(plain.splitlines()) <= height
    whole, _, _ = frame(snapshot, width=80, height=14, fit=False)   # the last frame, left in the scrollback
    assert all(part in whole for part in parts)


def test_drops_overflows_and_clipping_are_warnings():
    plain, ansi, _ = frame(dataclasses.replace(SNAPSHOT, dropped_blocks=3, overflows=2, clipping=True, peak_dbfs=0.0,
                                               windows=1, adapted_windows=1))
    assert " 1 update · " in plain and "adapted 1 window\n" in plain
    assert styled("dropped 3", "bold reverse red") in ansi and styled("overflows 2", "bold reverse red") in ansi
    assert styled(" CLIPPING: lower the gain ", "bold reverse red") in ansi
    assert styled("┃", "bold red") in ansi                               # the peak hold turns red too


def test_a_live_source_shows_its_lag_and_from_a_second_it_is_a_warning():
    plain, _, _ = frame(SNAPSHOT)                        # a file: no device to lag behind
    assert "behind" not in plain
    for behind_s, text, warning in ((0.94, "behind 0.9 s", False), (1.0, "behind 1.0 s", True),
                                    (12.34, "behind 12.3 s", True)):
        plain, ansi, _ = frame(dataclasses.replace(SNAPSHOT, behind_s=behind_s))
        assert f"overflows 0 · {text}" in plain
        assert (styled(text, "bold reverse yellow") in ansi) == warning


def test_timeline_strip_colours_segments_and_leaves_silence_blank():
    cells = timeline_cells(TIMELINE, now_s=75.0, cells=60)
    assert cells[5:8] == ["neutral"] * 3 and cells[15:18] == ["happy"] * 3 and cells[35:41] == ["sad"] * 6
    assert cells[25] == "angry" and cells[26] is None and cells[:5] == [None] * 5 and cells[41:] == [None] * 19
    plain, ansi, _ = frame(SNAPSHOT)
    strip = timeline_cells(TIMELINE, 75.0, 96)                           # 100 columns less the panel's border
    assert styled("h" * strip.count("happy"), "bold black on yellow") in ansi
    assert styled("s" * strip.count("sad"), "bold black on blue") in ansi
    line = next(line for line in plain.splitlines() if "hhh" in line)
    assert line[2:-2] == "".join(label_codes(LABELS)[c] if c else " " for c in strip)
    assert "-60 s" in plain and "now" in plain


def test_label_codes_are_distinct():
    assert list(label_codes(LABELS).values()) == list("nchsafdu")
    assert len(set(label_codes(("sad", "sadness", "s", "a")).values())) == 4


def test_fits_80_by_24_and_reads_without_colour():
    plain, _, ansi = frame(dataclasses.replace(SNAPSHOT, clipping=True, dropped_blocks=1), width=80, no_color=True)
    lines = plain.rstrip("\n").splitlines()
    assert len(lines) <= 24 and max(len(line) for line in lines) <= 80
    assert lines[-2:] == [" 42 updates · latency p50/p95 0.4/1.2 ms · RTF 0.031 · dropped 1 · overflows 0",
                          " adapted 12 windows"]                  # the footer breaks between counters
    for needle in (*LABELS, "75.0 s  16 kHz", "elapsed 1:15", "q quits", "female 0.73", "SPEECH", "level -23 dBFS",
                   "CLIPPING", "dropped 1", "hhh", "adapted 12 windows"):
        assert needle in plain
    colours = [int(p) for codes in SGR.findall(ansi) for p in codes.split(";") if p]
    assert not [p for p in colours if 30 <= p <= 49 or 90 <= p <= 107]   # no colour at all...
    assert styled("happy    ", "bold reverse") in ansi                   # ...but the leader stands out


def test_before_any_speech():
    empty = dataclasses.replace(SNAPSHOT, emotion_smoothed={}, emotion_latest={}, gender_smoothed={}, leading=None,
                                in_speech=False, timeline=(), windows=0, latency_p50_ms=None, latency_p95_ms=None,
                                realtime_factor=None, adapting=False, adapted_windows=0)
    plain, _, _ = frame(empty)
    assert "listening" in plain and "window –" in plain and "female    –" in plain
    assert "0 updates · latency p50/p95 –/– ms · RTF –" in plain and "adaptation off" in plain
    for label in LABELS:
        assert row(plain, label).endswith("·    –    – │") and "█" not in row(plain, label)


def test_monitor_holds_a_clipping_warning_for_two_seconds():
    monitor = Monitor("x", "m", LABELS, ("female", "male"), 16000)
    monitor.on_chunk(np.ones(1600, dtype=np.float32))
    assert monitor.snapshot(SourceStats()).clipping
    for _ in range(20):
        monitor.on_chunk(np.zeros(1600, dtype=np.float32))
    assert monitor.snapshot(SourceStats()).clipping
    monitor.on_chunk(np.zeros(1600, dtype=np.float32))
    assert not monitor.snapshot(SourceStats()).clipping and monitor.clipped_blocks == 1


def test_key_reader_sets_quit_on_q_and_restores_the_terminal(monkeypatch):
    """``q`` also calls ``on_quit`` at once (a silent microphone is stopped without waiting for a block)."""
    termios = pytest.importorskip("termios")
    import select
    import threading
    from types import SimpleNamespace

    from realtime import keys as keys_module

    polls, done_with_a_key = [], threading.Event()

    def spy_select(*args):
        if polls and polls[-1]:            # the poll after one that found a key: that key has been handled
            done_with_a_key.set()
        ready = select.select(*args)[0]
        polls.append(bool(ready))
        return ready, [], []

    monkeypatch.setattr(keys_module, "select", SimpleNamespace(select=spy_select))
    master, slave = os.openpty()
    calls: list[str] = []
    with os.fdopen(slave, "r") as tty_in:
        before = termios.tcgetattr(slave)
        with KeyReader(tty_in, on_quit=lambda: calls.append("stop")) as keys:
            assert not termios.tcgetattr(slave)[3] & (termios.ICANON | termios.ECHO)
            os.write(master, b"x")
            assert done_with_a_key.wait(10)                         # the reader has read "x" and polls again
            assert not keys.quit.is_set() and calls == []
            os.write(master, b"q")
            assert keys.quit.wait(10) and calls == ["stop"]
        assert termios.tcgetattr(slave) == before
    os.close(master)


def test_ctrl_z_gives_the_shell_its_terminal_back_and_fg_takes_it_again(monkeypatch):
    """After `fg` the terminal used to stay line-buffered and echoing, so `q` did nothing until Enter."""
    termios = pytest.importorskip("termios")
    import signal

    stops: list[int] = []
    monkeypatch.setattr(os, "kill", lambda pid, signum: stops.append(signum))    # the job would stop here
    master, slave = os.openpty()
    calls: list[str] = []
    with os.fdopen(slave, "r") as tty_in:
        before = termios.tcgetattr(slave)
        with KeyReader(tty_in, on_suspend=lambda: calls.append("suspend"), on_resume=lambda: calls.append("resume")):
            signal.getsignal(signal.SIGTSTP)(signal.SIGTSTP, None)        # Ctrl-Z
            assert termios.tcgetattr(slave) == before and stops == [signal.SIGTSTP] and calls == ["suspend"]
            signal.getsignal(signal.SIGCONT)(signal.SIGCONT, None)        # fg
            assert not termios.tcgetattr(slave)[3] & (termios.ICANON | termios.ECHO) and calls == ["suspend", "resume"]
        assert signal.getsignal(signal.SIGTSTP) == signal.SIG_DFL and termios.tcgetattr(slave) == before
    os.close(master)


def test_after_ctrl_z_and_bg_the_reader_leaves_the_terminal_unread(monkeypatch):
    """A read from the background stops the job (SIGTTIN): keys wait until it is in the foreground again."""
    pytest.importorskip("termios")
    master, slave = os.openpty()
    import threading

    holder, asked_in_background, left_twice = [os.getpgrp()], [], threading.Event()

    def tcgetpgrp(fd: int) -> int:
        if holder[0] != os.getpgrp():
            asked_in_background.append(fd)
            if len(asked_in_background) >= 2:   # the key was still there at the next poll: left unread
                left_twice.set()
        return holder[0]

    with os.fdopen(slave, "r") as tty_in:
        with KeyReader(tty_in) as keys:
            holder[0] = os.getpgrp() + 1                      # `bg`: the shell holds the terminal
            monkeypatch.setattr(os, "tcgetpgrp", tcgetpgrp)
            os.write(master, b"q")
            assert left_twice.wait(10) and not keys.quit.is_set()
            holder[0] = os.getpgrp()                          # `fg`
            assert keys.quit.wait(10)
    os.close(master)


def test_key_reader_leaves_the_terminal_of_a_background_job_alone(monkeypatch):
    """`ser demo &`: changing the terminal's mode from the background would stop the job (SIGTTOU)."""
    termios = pytest.importorskip("termios")
    master, slave = os.openpty()
    monkeypatch.setattr(os, "tcgetpgrp", lambda fd: os.getpgrp() + 1)    # another group holds the terminal
    with os.fdopen(slave, "r") as tty_in:
        before = termios.tcgetattr(slave)
        with KeyReader(tty_in) as keys:
            assert keys._thread is None and termios.tcgetattr(slave) == before
    os.close(master)


def test_key_reader_ignores_a_stream_that_is_not_a_terminal(tmp_path):
    with (tmp_path / "in").open("w+") as stream, KeyReader(stream) as keys:
        assert keys._thread is None and not keys.quit.is_set()


def test_dashboard_goes_to_stderr_and_jsonl_stdout_stays_clean(burst_file, tiny_model, capsys):
    assert cli.main(["replay", str(burst_file), "--speed", "0", "--jsonl", "-", "--model", str(tiny_model)]) == 0
    out, err = capsys.readouterr()
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["type"] for e in events].count("segment") == 3 and events[-1]["type"] == "stats"
    assert "emotion" in err and "timeline" in err
    assert "adapted 3 windows" in err and err.rstrip().splitlines()[-1].startswith("summary: 6.0 s of audio")


def replay_on_terminal(path: Path, model: Path, master: int, slave: int, stderr: object) -> bytes:
    """`ser replay PATH --jsonl -` with stdin and stdout on the pseudo-terminal ``slave``; everything the
    terminal received, once the run has ended with exit 0."""
    proc = subprocess.Popen([sys.executable, "-m", "realtime.cli", "replay", str(path), "--speed", "0",
                             "--jsonl", "-", "--model", str(model)], stdin=slave, stdout=slave, stderr=stderr)
    os.close(slave)
    screen = b""
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:          # EIO: the terminal's other end is closed
            break
        if not data:
            break
        screen += data
    os.close(master)
    assert proc.wait(timeout=120) == 0
    return screen


def test_events_on_the_dashboards_terminal_are_whole_json_lines(burst_file, tiny_model):
    """With stdout on the dashboard's terminal, each event is printed above the frame unbroken, however narrow."""
    fcntl, termios = pytest.importorskip("fcntl"), pytest.importorskip("termios")
    import struct

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 60, 0, 0))    # 40 rows, 60 columns
    screen = replay_on_terminal(burst_file, tiny_model, master, slave, stderr=slave)
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.decode()).replace("\r", "")
    events = [json.loads(line[line.index("{"):]) for line in plain.split("\n") if '{"schema"' in line]
    assert [e["type"] for e in events].count("segment") == 3 and events[-1]["type"] == "stats"


def test_events_reach_a_terminal_stdout_when_the_dashboard_draws_elsewhere(burst_file, tiny_model, tmp_path):
    """`ser ... --jsonl - 2> log` on a terminal: the events used to go into log, among the dashboard's frame."""
    master, slave = os.openpty()
    with (tmp_path / "log").open("wb") as log:
        screen = replay_on_terminal(burst_file, tiny_model, master, slave, stderr=log)
    events = [json.loads(line) for line in screen.decode().replace("\r", "").splitlines() if line.startswith("{")]
    assert [e["type"] for e in events].count("segment") == 3 and events[-1]["type"] == "stats"
    log = (tmp_path / "log").read_text()
    assert '"schema"' not in log and "summary: " in log


def test_headless_never_imports_the_dashboard():
    code = ("import sys; from realtime import cli; cli.main(['demo','--headless','--speed','0']); "
            "print('realtime.dashboard' in sys.modules, 'realtime.keys' in sys.modules, 'rich.live' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False False False"


def test_a_block_peaking_exactly_at_the_clip_level_counts():
    from realtime.monitor import CLIP_LEVEL, Monitor
    m = Monitor("x", "m", ("a",), ("f", "m"), 16000)
    m.on_chunk(np.array([0.0, CLIP_LEVEL]))
    assert m.clipped_blocks == 1
