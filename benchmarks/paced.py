"""What waiting between blocks costs: our engine's loop (A) with a sleep after every 100 ms block.

A microphone hands over a block every 100 ms and the reader sleeps in between, while the
benchmark's A runs its blocks back to back. This runs A's loop over the same audio with
pauses of 0, 10 and 100 ms after each block (repetitions interleaved, medians) and prints
the CPU time per audio-second, sleep excluded, beside the back-to-back figure. Beside it, the
CPU time of one small numpy operation (an in-place add over one block) right after such a
pause shows how much of the slowdown belongs to the machine rather than to the loop. Run from
the repository root::

    python -m benchmarks.paced [--data DIR] [--seconds 40] [--reps 3]
"""

from __future__ import annotations

from benchmarks.threads import pin_one_thread

pin_one_thread()   # before numpy

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks.arguments import float_range, output_file, positive_int  # noqa: E402
from benchmarks.command import run_command, write_json  # noqa: E402
from benchmarks.corpus import stream_or_usage_error  # noqa: E402
from benchmarks.measure import measure, run_ours  # noqa: E402
from realtime.features import DEFAULT_SPEC  # noqa: E402
from realtime.scorer import DEFAULT_MODEL, Scorer  # noqa: E402
from realtime.sources import DEFAULT_BLOCK  # noqa: E402

PAUSES_S = (0.0, 0.01, 0.1)
PROBES = 50                  # small operations timed after each pause
SECONDS = (1.0, 600.0)       # of audio; each repetition sleeps 1.1 s per second of it


def paced(samples: np.ndarray, reps: int) -> dict[float, float]:
    """Median CPU ms per audio-second of A's loop for each pause, repetitions interleaved."""
    scorer = Scorer(DEFAULT_MODEL)
    audio_s = len(samples) / DEFAULT_SPEC.sample_rate
    run_ours(samples[:DEFAULT_SPEC.sample_rate * 10], scorer)   # warm-up: imports, first ONNX calls
    runs: dict[float, list[float]] = {pause: [] for pause in PAUSES_S}
    for _ in range(reps):
        for pause in PAUSES_S:
            runs[pause].append(measure(lambda: run_ours(samples, scorer, pause), audio_s).cpu_ms_per_audio_s)
    return {pause: float(np.median(values)) for pause, values in runs.items()}


def probe_us(pause: float) -> float:
    """Median thread CPU time, in microseconds, of one in-place numpy add over a block right after ``pause``."""
    block, out = np.ones(DEFAULT_BLOCK, np.float32), np.empty(DEFAULT_BLOCK, np.float32)
    times = []
    for _ in range(PROBES):
        time.sleep(pause)
        began = time.thread_time()
        np.add(block, 1.0, out=out)
        times.append(time.thread_time() - began)
    return float(np.median(times)) * 1e6


def report(figures: dict[float, float], probes: dict[float, float], audio_s: float, reps: int) -> str:
    lines = [f"A's loop over {audio_s:.0f} s of speech with pauses, 100 ms blocks, {reps} interleaved repetitions "
             f"(medians); CPU time, sleep excluded; then one numpy add over a block after the pause "
             f"(median of {PROBES})",
             f"{'pause after each block':>24s} {'CPU ms/audio-s':>15s} {'x back to back':>15s} {'numpy add us':>13s}"]
    for pause, cpu in figures.items():
        lines.append(f"{pause * 1000:21.0f} ms {cpu:15.3f} {cpu / figures[0.0]:15.2f} {probes[pause]:13.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.paced", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="folder of speech (default ../shared/data; else the bundled demo)")
    parser.add_argument("--seconds", type=float_range(*SECONDS), default=40.0,
                        help=f"seconds of audio, {SECONDS[0]:g}-{SECONDS[1]:g} (default 40)")
    parser.add_argument("--reps", type=positive_int, default=3, help="interleaved repetitions, 1 or more (default 3)")
    parser.add_argument("--json", type=output_file, help="also write the figures as JSON to this path")
    args = parser.parse_args(argv)
    stream = stream_or_usage_error(parser, args.data, args.seconds / 60, DEFAULT_SPEC.sample_rate)
    figures = paced(stream.samples, args.reps)
    probes = {pause: probe_us(pause) for pause in PAUSES_S}
    print(report(figures, probes, stream.duration_s, args.reps))
    if args.json:
        write_json(args.json, {"audio_s": stream.duration_s, "reps": args.reps, "origin": stream.origin,
                               "cpu_ms_per_audio_s": {str(p): v for p, v in figures.items()},
                               "numpy_add_us": {str(p): v for p, v in probes.items()}})
    return 0


if __name__ == "__main__":
    run_command("paced", main)
