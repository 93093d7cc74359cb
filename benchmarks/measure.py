"""Timing helpers, our engine (A) as `ser live` runs it, and figures of a whole `ser` process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.vmic import stop_process
from realtime.monitor import Monitor
from realtime.pipeline import Pipeline
from realtime.runner import Source, run
from realtime.scorer import Scorer
from realtime.sinks import JsonlSink, Sink
from realtime.sources import DEFAULT_BLOCK, Chunk, SourceStats
from realtime.vad import FrameVad, VadConfig, Windower

SCORED = ("partial", "segment")


@dataclass(frozen=True)
class Measurement:
    """One timed run over ``audio_s`` seconds of audio; ``latencies_ms`` has one entry per decision."""

    cpu_s: float
    wall_s: float
    audio_s: float
    latencies_ms: np.ndarray

    @property
    def cpu_ms_per_audio_s(self) -> float:
        return 1000.0 * self.cpu_s / self.audio_s

    @property
    def realtime_factor(self) -> float:
        """Wall-clock seconds per audio second."""
        return self.wall_s / self.audio_s

    def latency_ms(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if len(self.latencies_ms) else float("nan")


def measure(decide: Callable[[], list[float]], audio_s: float) -> Measurement:
    """Process CPU time and wall time of ``decide()``, which returns its decision latencies in ms."""
    cpu, wall = time.process_time(), time.perf_counter()
    latencies = decide()
    return Measurement(time.process_time() - cpu, time.perf_counter() - wall, audio_s, np.asarray(latencies))


class BlockSource:
    """In-memory audio in microphone-sized blocks, delivered as fast as possible, or with ``pause_s``
    of sleep after each block (as a microphone leaves the reader waiting)."""

    def __init__(self, samples: np.ndarray, block: int = DEFAULT_BLOCK, pause_s: float = 0.0) -> None:
        self.samples = samples
        self.block = block
        self.pause_s = pause_s
        self.stats = SourceStats()

    def __iter__(self) -> Iterator[Chunk]:
        for start in range(0, len(self.samples), self.block):
            self.stats.blocks += 1
            yield Chunk(self.samples[start:start + self.block], start)
            if self.pause_s:
                time.sleep(self.pause_s)


class LatencySink:
    """Keeps the latency of every scored event."""

    def __init__(self) -> None:
        self.latencies_ms: list[float] = []

    def write(self, record: dict) -> None:
        if record["type"] in SCORED:
            self.latencies_ms.append(record["latency_ms"])

    def close(self) -> None:
        pass


def run_whole(source: Source, pipeline: Pipeline, sinks: list[Sink], monitor: Monitor) -> None:
    """:func:`realtime.runner.run` to the source's end. The Ctrl-C it catches (for an orderly end) is raised
    again: a benchmark must stop, not report part of the audio as the whole."""
    if run(source, pipeline, sinks, monitor):
        raise KeyboardInterrupt


def run_ours(samples: np.ndarray, scorer: Scorer, pause_s: float = 0.0,
             pipeline: Pipeline | None = None) -> list[float]:
    """A: the `ser live --jsonl` loop (monitor, sinks, adaptation, partials) over 100 ms blocks, with
    ``pause_s`` of sleep after each; ``pipeline``, a fresh one over ``scorer`` to use instead of ``Pipeline(scorer)``."""
    card = scorer.card
    rate = card.spec.sample_rate
    monitor = Monitor("benchmark", card.name, tuple(card.labels), tuple(card.gender_labels), rate)
    latency, jsonl = LatencySink(), JsonlSink(os.devnull)
    try:
        run_whole(BlockSource(samples, pause_s=pause_s), Pipeline(scorer) if pipeline is None else pipeline,
                  [jsonl, latency], monitor)
    finally:
        jsonl.close()
    return latency.latencies_ms


def segment_windows(samples: np.ndarray, rate: int, hop: int, config: VadConfig = VadConfig()) -> list[tuple[int, int]]:
    """The ``segment`` windows our VAD finds, ``(start, end)`` in samples: the windows B scores."""
    vad, windower = FrameVad(rate, hop, config), Windower(rate, hop, config)
    events = windower.push(vad.push(samples)) + windower.flush()
    return [(e.start, e.end) for e in events if e.kind == "segment"]


def ser_command() -> list[str]:
    """The `ser` console script of this interpreter's environment (not a shim that re-executes it)."""
    exe = shutil.which("ser", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "realtime.cli"]


def cold_start_s(path: Path, env: dict[str, str]) -> float:
    """Seconds from starting `ser replay PATH --speed 0 --headless --jsonl -` to its first event line."""
    began = time.perf_counter()
    proc = subprocess.Popen([*ser_command(), "replay", str(path), "--speed", "0", "--headless", "--jsonl", "-"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        first = proc.stdout.readline()
        elapsed = time.perf_counter() - began
        _, err = proc.communicate()
    except BaseException:   # Ctrl-C or SIGTERM: the child must not outlive the benchmark
        stop_process(proc)
        raise
    if not first:
        raise RuntimeError(f"`ser replay {path}` produced no event (exit {proc.returncode}): {err.strip()}")
    return elapsed


def vm_hwm_mb(pid: int) -> float:
    """Peak resident set of a running process (``VmHWM``), 0 once it has exited.

    Unlike ``ru_maxrss``, ``VmHWM`` starts afresh at ``exec``: a child spawned from this
    large benchmark process would otherwise report the parent's peak as its own.
    """
    try:
        with open(f"/proc/{pid}/status") as status:
            line = next((line for line in status if line.startswith("VmHWM:")), "VmHWM: 0 kB")
    except OSError:
        return 0.0
    return int(line.split()[1]) / 1024.0


@dataclass(frozen=True)
class ProcessFigures:
    """A whole `ser replay` process: CPU seconds (user + system), wall seconds, peak RSS in MB."""

    cpu_s: float
    wall_s: float
    peak_rss_mb: float


def replay_process(path: Path, env: dict[str, str], poll_s: float = 0.02) -> ProcessFigures:
    """Run `ser replay PATH --speed 0 --headless --jsonl /dev/null`; its CPU time and peak RSS (polled)."""
    with tempfile.TemporaryFile() as err:
        began = time.perf_counter()
        proc = subprocess.Popen([*ser_command(), "replay", str(path), "--speed", "0", "--headless",
                                 "--jsonl", os.devnull], stdout=subprocess.DEVNULL, stderr=err, env=env)
        peak = 0.0
        try:
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                peak = max(peak, vm_hwm_mb(proc.pid))
                time.sleep(poll_s)
        except BaseException:   # as in cold_start_s
            stop_process(proc)
            raise
        wall = time.perf_counter() - began
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"`ser replay {path}` failed: {err.read().decode(errors='replace').strip()}")
    return ProcessFigures(usage.ru_utime + usage.ru_stime, wall, peak)
