"""Mutation fuzzing of `ser replay`: every damaged file must end in a clean error or valid output.

Valid seed files (WAV int/float, FLAC, Ogg Vorbis, AIFF, stereo 44.1 kHz) holding one
utterance of the bundled demo are mutated with seeded byte-level operators (bit flips,
header fields set to extremes, truncation, insertion, deletion, duplication) and
replayed in-process through :func:`realtime.cli.main`::

    python -m benchmarks.fuzz_replay --cases 3000 --seed 0 --keep /tmp/crashes

Exit status 1 if any case crashed (an internal error, an escaped exception or
malformed output); the offending inputs are written to ``--keep``.
"""

from __future__ import annotations

import signal

HELD_SIGNALS = {signal.SIGINT, signal.SIGTERM}
if __name__ == "__main__":   # held before any import starts a thread, which keeps the mask: see signals_held
    signal.pthread_sigmask(signal.SIG_BLOCK, HELD_SIGNALS)

import argparse  # noqa: E402
import contextlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from benchmarks.arguments import non_negative_int, positive_int  # noqa: E402
from benchmarks.command import run_command  # noqa: E402
from realtime import cli  # noqa: E402

log = logging.getLogger("fuzz_replay")

SEED_FORMATS = (  # name, container, subtype, sample rate, channels
    ("pcm16.wav", "WAV", "PCM_16", 16000, 1),
    ("float.wav", "WAV", "FLOAT", 16000, 1),
    ("u8_stereo_44k.wav", "WAV", "PCM_U8", 44100, 2),
    ("speech.flac", "FLAC", "PCM_16", 16000, 1),
    ("speech.ogg", "OGG", "VORBIS", 16000, 1),
    ("pcm24.aiff", "AIFF", "PCM_24", 22050, 1),
)
EXCERPT_S = (0.5, 3.0)        # one utterance of the demo recording (seconds)
EVENT_TYPES = {"speech_start", "partial", "segment", "stats"}


@dataclass(frozen=True)
class Outcome:
    """How one replay ended: ``output`` (valid events), ``error`` (one clean line) or ``crash``.

    ``native`` holds what C libraries wrote straight to file descriptor 2 (libmpg123 inside
    libsndfile does, for junk that looks like MPEG); it is reported, not judged.
    """

    kind: str
    detail: str
    native: str = ""


def write_seed_files(directory: Path) -> list[Path]:
    """Write the valid seed files (about 2.5 s of speech each) and return their paths."""
    import soxr

    speech, rate = sf.read(cli.demo_path(), dtype="float32", start=int(EXCERPT_S[0] * 16000),
                           stop=int(EXCERPT_S[1] * 16000))
    paths = []
    for name, container, subtype, target_rate, channels in SEED_FORMATS:
        audio = soxr.resample(speech, rate, target_rate) if target_rate != rate else speech
        audio = np.column_stack([audio] * channels) if channels > 1 else audio
        path = directory / name
        sf.write(path, audio, target_rate, format=container, subtype=subtype)
        paths.append(path)
    return paths


def _flip_bits(data: bytearray, rng: np.random.Generator) -> bytearray:
    for i in rng.integers(0, len(data), rng.integers(1, 17)):
        data[i] ^= 1 << int(rng.integers(0, 8))
    return data


def _header_byte(data: bytearray, rng: np.random.Generator) -> bytearray:
    data[int(rng.integers(0, min(len(data), 256)))] = int(rng.integers(0, 256))
    return data


def _header_field(data: bytearray, rng: np.random.Generator) -> bytearray:
    width = int(rng.choice([2, 4]))
    at = int(rng.integers(0, max(1, min(len(data), 128) - width)))
    value = int(rng.choice([0, 1, 2 ** (8 * width - 1) - 1, 2 ** (8 * width) - 1]))
    data[at:at + width] = value.to_bytes(width, "little" if rng.random() < 0.5 else "big")
    return data


def _truncate(data: bytearray, rng: np.random.Generator) -> bytearray:
    return data[:int(rng.integers(0, len(data)))]


def _insert(data: bytearray, rng: np.random.Generator) -> bytearray:
    at = int(rng.integers(0, len(data) + 1))
    return data[:at] + bytearray(rng.bytes(int(rng.integers(1, 256)))) + data[at:]


def _delete(data: bytearray, rng: np.random.Generator) -> bytearray:
    at = int(rng.integers(0, len(data)))
    return data[:at] + data[at + int(rng.integers(1, 4096)):]


def _duplicate(data: bytearray, rng: np.random.Generator) -> bytearray:
    at = int(rng.integers(0, len(data)))
    span = data[at:at + int(rng.integers(1, 4096))]
    return data[:at] + span + data[at:]


MUTATORS: tuple[Callable[[bytearray, np.random.Generator], bytearray], ...] = (
    _flip_bits, _header_byte, _header_field, _truncate, _insert, _delete, _duplicate)


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """Apply one to three random mutation operators to a copy of ``data``."""
    out = bytearray(data)
    for index in rng.integers(0, len(MUTATORS), rng.integers(1, 4)):
        if out:
            out = MUTATORS[index](out, rng)
    return bytes(out)


def output_problem(events: list[dict], stderr: str) -> str | None:
    """Why a successful replay's output is not valid, or None when it is."""
    if "Traceback" in stderr or "summary:" not in stderr:
        return "stderr lacks the summary or holds a traceback"
    if not events or events[-1]["type"] != "stats":
        return "the event stream does not end with a stats event"
    end_s = events[-1]["end_s"]
    for event in events:
        if event["schema"] != 1 or event["type"] not in EVENT_TYPES:
            return f"bad event header {event['schema']!r}/{event['type']!r}"
        if not (math.isfinite(event["start_s"]) and 0 <= event["start_s"] <= event["end_s"] <= end_s + 0.02):
            return f"bad event times {event['start_s']}..{event['end_s']} (stream {end_s} s)"
        if event["type"] in ("segment", "partial"):
            probs = event["emotion_probs"]
            if event["emotion"] not in probs or not math.isclose(sum(probs.values()), 1.0, abs_tol=1e-3):
                return f"bad emotion probabilities {probs}"
    return None


@contextlib.contextmanager
def native_stderr() -> Iterator[io.StringIO]:
    """Capture file descriptor 2 (C libraries' own messages) into the yielded buffer."""
    captured = io.StringIO()
    with tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.write(sink.read().decode(errors="replace"))


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) and SIGTERM back from this thread, and from threads it starts, until the block ends.

    A case's `ser` handlers would turn them into an orderly stop (a truncated or exit-130 case, and the fuzzing going
    on); held, they reach the handlers in force between cases, which end the run. A thread that does not hold them
    would take them instead: the command holds them from start-up, before its imports start any (BLAS, say).
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, HELD_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def replay_outcome(path: Path, *extra: str) -> Outcome:
    """Replay ``path`` in-process as fast as possible and classify how it ended."""
    jsonl = path.with_name(path.name + ".jsonl")
    jsonl.unlink(missing_ok=True)
    with native_stderr() as native:
        outcome = _classify(path, jsonl, *extra)
    return Outcome(outcome.kind, outcome.detail, native.getvalue().strip())


def _classify(path: Path, jsonl: Path, *extra: str) -> Outcome:
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), warnings.catch_warnings():
            warnings.simplefilter("error")  # a stray warning would be a multi-line message on stderr
            code = cli.main(["replay", str(path), "--speed", "0", "--headless", "--jsonl", str(jsonl), *extra])
    except Exception as exc:  # anything escaping main() is exactly what we hunt for
        return Outcome("crash", f"{type(exc).__name__}: {exc}")
    text = stderr.getvalue()
    lines = text.strip().splitlines()
    if code == 2:
        clean = len(lines) == 1 and lines[0].startswith(f"ser: error: {path}: ")
        return Outcome("error" if clean else "crash", text.strip())
    if code != 0:
        return Outcome("crash", f"exit {code}: {text.strip()}")
    try:
        events = [json.loads(line) for line in jsonl.read_text().splitlines()]
    except (OSError, ValueError) as exc:
        return Outcome("crash", f"unreadable JSONL: {exc}")
    problem = output_problem(events, text)
    return Outcome("crash", problem) if problem else Outcome("output", f"{len(events)} events")


def fuzz(cases: int, seed: int, workdir: Path, keep: Path | None = None) -> tuple[Counter, list[tuple[int, str]], float]:
    """Run ``cases`` mutated replays; return outcome counts, crashes (case, detail) and the slowest case in s."""
    seeds = [(p.suffix, p.read_bytes()) for p in write_seed_files(workdir)]
    counts: Counter = Counter()
    crashes: list[tuple[int, str]] = []
    slowest = 0.0
    for case in range(cases):
        suffix, data = seeds[case % len(seeds)]
        path = workdir / f"case{suffix}"
        path.write_bytes(mutate(data, np.random.default_rng([seed, case])))
        began = time.perf_counter()
        with signals_held():
            outcome = replay_outcome(path)
        slowest = max(slowest, time.perf_counter() - began)
        counts[outcome.kind] += 1
        counts["native"] += bool(outcome.native)
        if outcome.kind == "crash":
            crashes.append((case, outcome.detail))
            if keep is not None:
                keep.mkdir(parents=True, exist_ok=True)
                (keep / f"seed{seed}-case{case}{suffix}").write_bytes(path.read_bytes())
    return counts, crashes, slowest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fuzz_replay", description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=positive_int, default=3000, help="mutated files to replay, 1 or more (default 3000)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of the mutations, 0 or more (default 0)")
    parser.add_argument("--keep", type=Path, help="directory for inputs that crashed")
    args = parser.parse_args(argv)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, HELD_SIGNALS)   # in this thread only: held at start-up
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("realtime").setLevel(logging.ERROR)  # truncation warnings are expected here
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        counts, crashes, slowest = fuzz(args.cases, args.seed, Path(tmp), args.keep)
    for case, detail in crashes:
        log.info("crash in case %d: %s", case, detail)
    log.info("%d cases (seed %d) in %.0f s, slowest %.2f s: %d valid output, %d clean errors, %d crashes; "
             "%d with native decoder messages on fd 2", args.cases, args.seed, time.perf_counter() - began, slowest,
             counts["output"], counts["error"], counts["crash"], counts["native"])
    return 1 if crashes else 0


if __name__ == "__main__":
    run_command("fuzz_replay", main)
