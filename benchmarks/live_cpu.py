"""CPU use of `ser live` on the virtual microphone, headless and with the dashboard.

Speech with pauses is played into a PulseAudio null sink (:mod:`benchmarks.vmic`) while
`ser live --device pulse --jsonl PATH` listens. The CPU time of the `ser` process (user +
system, all threads) is read from ``/proc/<pid>/stat`` when playback starts and when it
ends, after the process has settled. The share of libpulse's client thread (``threaded-ml``,
started by ALSA's pulse plugin, not by our code) is read from ``/proc/<pid>/task`` and shown
apart. The dashboard runs in a pseudo-terminal. Run from the repository root::

    python -m benchmarks.live_cpu [--seconds 60] [--data DIR]
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import signal
import struct
import subprocess
import tempfile
import termios
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from benchmarks.arguments import float_range
from benchmarks.command import run_command
from benchmarks.corpus import Stream, stream_or_usage_error
from benchmarks.measure import ser_command, vm_hwm_mb
from benchmarks.threads import as_user_runs_it
from benchmarks.vmic import VirtualMic, VirtualMicUnavailable, stop_process, virtual_mic

SETTLE_S = 3.0                # after start-up, before the CPU clock is read
EXIT_TIMEOUT_S = 10.0         # after Ctrl-C (SIGINT); a process still running then is stopped
TERMINAL_SIZE = (30, 100)     # rows, columns of the dashboard's pseudo-terminal
GOALS_PERCENT = {"headless": 2.0, "dashboard": 10.0}
RATE = 16000                  # the shipped model's rate; the null sink runs at it
PULSE_THREAD = "threaded-ml"  # libpulse's client main loop, in-process under ALSA's pulse plugin
SECONDS = (1.0, 3600.0)       # speech played per mode, in real time (and held in memory)


@dataclass(frozen=True)
class LiveFigures:
    """One `ser live` run: CPU as a percentage of one core while ``audio_s`` of audio played."""

    mode: str
    audio_s: float
    cpu_percent: float
    pulse_client_percent: float   # the part spent in libpulse's client thread
    segments: int
    max_behind_s: float | None    # the final `stats` event's: the longest a block waited after its capture
    peak_rss_mb: float
    exit_s: float | None      # seconds from Ctrl-C to exit; None if it had to be stopped


def cpu_s(stat_path: Path) -> float:
    """User + system CPU seconds from a ``/proc`` ``stat`` file (of a process: all its threads, ended ones too)."""
    fields = stat_path.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> tuple[float, float]:
    """CPU seconds of a process, and of libpulse's client thread within it (0 if it has none)."""
    pulse = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            if (task / "comm").read_text().strip() == PULSE_THREAD:
                pulse += cpu_s(task / "stat")
        except OSError:   # the thread ended meanwhile
            continue
    return cpu_s(Path(f"/proc/{pid}/stat")), pulse


def drain(fd: int) -> None:
    """Read and discard a pseudo-terminal's output until it closes, so the writer never blocks."""
    try:
        while os.read(fd, 65536):
            pass
    except OSError:
        pass


def start_live(env: dict[str, str], mode: str, events: Path, log: Path) -> tuple[subprocess.Popen, int | None]:
    """Start `ser live` on the virtual microphone; the dashboard gets a pseudo-terminal (its fd is returned)."""
    command = [*ser_command(), "live", "--device", "pulse", "--jsonl", str(events)]
    if mode == "headless":
        with log.open("w") as err:
            return subprocess.Popen([*command, "--headless"], env=env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=err), None
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", *TERMINAL_SIZE, 0, 0))
    proc = subprocess.Popen(command, env={**env, "TERM": "xterm-256color"}, stdin=slave, stdout=slave,
                            stderr=slave)
    os.close(slave)
    threading.Thread(target=drain, args=(master,), daemon=True).start()
    return proc, master


def measure_live(mic: VirtualMic, env: dict[str, str], mode: str, audio: Path, audio_s: float,
                 workdir: Path) -> LiveFigures:
    """Play ``audio`` into the virtual microphone while `ser live` runs in ``mode``; read its CPU clock."""
    events, log = workdir / f"{mode}.jsonl", workdir / f"{mode}.log"
    proc, terminal = start_live(env, mode, events, log)
    try:
        time.sleep(SETTLE_S)
        if proc.poll() is not None:
            raise RuntimeError(f"`ser live` ({mode}) exited early: {log.read_text().strip() if log.exists() else ''}")
        start, wall = process_cpu_s(proc.pid), time.monotonic()
        mic.play(audio)
        end, wall = process_cpu_s(proc.pid), time.monotonic() - wall
        cpu, pulse = (after - before for before, after in zip(start, end))
        peak = vm_hwm_mb(proc.pid)
        proc.send_signal(signal.SIGINT)
        interrupted = time.monotonic()
        try:
            proc.wait(EXIT_TIMEOUT_S)
            exit_s: float | None = time.monotonic() - interrupted
        except subprocess.TimeoutExpired:
            exit_s = None
    finally:
        stop_process(proc)
        if terminal is not None:
            os.close(terminal)
    records = [json.loads(line) for line in events.read_text().splitlines()] if events.exists() else []
    segments = sum(r["type"] == "segment" for r in records)
    behind = records[-1]["max_behind_s"] if records and records[-1]["type"] == "stats" else None
    return LiveFigures(mode, audio_s, 100.0 * cpu / wall, 100.0 * pulse / wall, segments, behind, peak, exit_s)


def live_cpu(stream: Stream, seconds: float, user_env: dict[str, str]) -> list[LiveFigures]:
    """Both modes over the first ``seconds`` of ``stream``, on one virtual microphone.

    `ser live` gets the thread variables of ``user_env``: it runs as a user starts it.
    """
    clip = stream.samples[:int(seconds * stream.rate)]
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # A background job of a script starts with Ctrl-C ignored, and `ser live` would inherit that;
        # a handled signal is reset to its default in the child.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    with tempfile.TemporaryDirectory(prefix="live-cpu-") as tmp, virtual_mic(rate=stream.rate) as mic:
        audio = Path(tmp) / "speech.wav"
        sf.write(audio, np.clip(clip, -1.0, 1.0), stream.rate, subtype="PCM_16")
        env = as_user_runs_it(mic.env, user_env)
        return [measure_live(mic, env, mode, audio, len(clip) / stream.rate, Path(tmp)) for mode in GOALS_PERCENT]


def report(figures: list[LiveFigures]) -> str:
    lines = [f"`ser live` on the virtual microphone (PulseAudio null sink, 16 kHz): CPU time of the `ser` process "
             f"from /proc/<pid>/stat over {figures[0].audio_s:.0f} s of played speech; of which libpulse's client "
             f"thread ({PULSE_THREAD}, ALSA's pulse plugin)",
             f"{'mode':12s} {'CPU % of one core':>18s} {'of which libpulse':>18s} {'goal':>8s} {'segments heard':>15s} "
             f"{'most behind s':>14s} {'peak RSS MB':>12s} {'exit after Ctrl-C':>18s}"]
    for f in figures:
        goal = GOALS_PERCENT[f.mode]
        ok = "ok" if f.cpu_percent <= goal else "MISSED"
        exited = f"{f.exit_s:.2f} s" if f.exit_s is not None else f"> {EXIT_TIMEOUT_S:.0f} s, stopped"
        behind = "n/a" if f.max_behind_s is None else f"{f.max_behind_s:.3f}"
        lines.append(f"{f.mode:12s} {f.cpu_percent:18.2f} {f.pulse_client_percent:18.2f} "
                     f"{'<= ' + format(goal, 'g'):>8s} {f.segments:15d} {behind:>14s} {f.peak_rss_mb:12.1f} "
                     f"{exited:>18s}  {ok}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.live_cpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path,
                        help="folder of speech (default ../shared/data; else the bundled demo)")
    parser.add_argument("--seconds", type=float_range(*SECONDS), default=60.0,
                        help=f"seconds of speech played per mode, {SECONDS[0]:g}-{SECONDS[1]:g} (default 60)")
    args = parser.parse_args(argv)
    stream = stream_or_usage_error(parser, args.data, args.seconds / 60, RATE)
    try:
        figures = live_cpu(stream, args.seconds, dict(os.environ))
    except VirtualMicUnavailable as exc:
        print(f"live_cpu: no virtual microphone: {exc}")
        return 2
    print(report(figures))
    return 0


if __name__ == "__main__":
    run_command("live_cpu", main)
