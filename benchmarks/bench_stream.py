"""Side-by-side benchmark of our engine against what people use today, on the same audio.

A: our engine as `ser live` runs it (100 ms blocks, VAD, incremental features, adaptation,
ONNX, rolling partials). B: the seeds' librosa recipe scored by scikit-learn once per VAD
window. C: the same recipe on the last 1.5 s every 0.5 s. Repetitions are interleaved
(A B C A B C ...) and medians reported (a ratio is the median of each repetition's ratio),
with our cold start, peak RSS and model size.
Last, `ser live` listens to the virtual microphone (:mod:`benchmarks.live_cpu`). Run from
the repository root::

    python -m benchmarks.bench_stream [--data DIR] [--minutes 10] [--reps 5] [--live-seconds 60] [--json PATH]
"""

from __future__ import annotations

from benchmarks.threads import pin_one_thread

USER_ENV = pin_one_thread()   # before numpy; `ser` subprocesses get the user's environment back

import argparse  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from importlib import metadata  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from benchmarks import baselines, live_cpu, measure  # noqa: E402
from benchmarks.arguments import float_range, non_negative_int, output_file, stream_arguments  # noqa: E402
from benchmarks.command import run_command, shown, write_json  # noqa: E402
from benchmarks.corpus import Stream, stream_or_usage_error  # noqa: E402
from benchmarks.vmic import VirtualMicUnavailable  # noqa: E402
from realtime.features import DEFAULT_SPEC  # noqa: E402
from realtime.scorer import DEFAULT_MODEL, Scorer  # noqa: E402

ENGINES = {"A": "ours: `ser live` loop, 100 ms blocks, partials on",
           "B": "librosa recipe + sklearn MLP, once per VAD window",
           "C": "same recipe on the last 1.5 s, every 0.5 s"}
GOALS = {"cpu_ms_per_audio_s": 1.3, "latency_p99_ms": 10.0, "cold_start_s": 1.5, "peak_rss_mb": 150.0,
         "model_mb": 2.0, "b_over_a": 3.0, "c_over_a": 10.0}
WARMUP_S = 30.0


def machine() -> str:
    """CPU model name (as `lscpu` reports it) and core count."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        model = platform.processor() or platform.machine()
    return f"{model}, {os.cpu_count()} cores"


def versions() -> str:
    names = ("numpy", "onnxruntime", "librosa", "scikit-learn")
    return f"Python {platform.python_version()}, " + ", ".join(f"{n} {metadata.version(n)}" for n in names)


def prepare_baselines(stream: Stream, scorer: Scorer, command: str,
                      ) -> tuple[list[tuple[int, int]], baselines.MLPClassifier]:
    """The VAD windows B scores (``scorer``'s card sets the VAD; none ends ``command``) and the recipe's classifier
    fitted on them; this also compiles librosa's numba code."""
    spec = scorer.card.spec
    windows = measure.segment_windows(stream.samples, spec.sample_rate, spec.hop_length, scorer.card.vad)
    if not windows:
        raise SystemExit(f"{command}: the VAD found no speech window in the stream; give a folder of speech")
    features = np.array([baselines.recipe_features(stream.samples[a:b], stream.rate) for a, b in windows])
    labels = [baselines.recipe_label(stream.clip_at((a + b) // 2)) for a, b in windows]
    model = baselines.fit_classifier(features, labels)
    baselines.decide_ms(stream.samples[:int(baselines.SLIDE_SPAN_S * stream.rate)], stream.rate, model)
    return windows, model


def summary(runs: list[measure.Measurement]) -> dict[str, float]:
    """Medians over repetitions."""
    return {"cpu_ms_per_audio_s": float(np.median([r.cpu_ms_per_audio_s for r in runs])),
            "realtime_factor": float(np.median([r.realtime_factor for r in runs])),
            "decisions": int(np.median([len(r.latencies_ms) for r in runs])),
            "latency_p50_ms": float(np.median([r.latency_ms(50) for r in runs])),
            "latency_p99_ms": float(np.median([r.latency_ms(99) for r in runs]))}


def paired_ratios(over: list[measure.Measurement], under: list[measure.Measurement]) -> list[float]:
    """CPU-per-audio-second ratio within each repetition: the machine's speed drifts less within one. NaN where
    ``over`` made no decision (C on a stream under 1.5 s): its CPU time then covers no work."""
    return [o.cpu_ms_per_audio_s / u.cpu_ms_per_audio_s if len(o.latencies_ms) else math.nan
            for o, u in zip(over, under)]


def benchmark(stream: Stream, reps: int) -> dict:
    """Interleaved repetitions of A, B, C, the cold start and a whole `ser replay`; medians of each."""
    scorer = Scorer(DEFAULT_MODEL)
    windows, model = prepare_baselines(stream, scorer, "bench_stream")
    measure.run_ours(stream.samples[:int(WARMUP_S * stream.rate)], scorer)
    samples, rate, audio_s = stream.samples, stream.rate, stream.duration_s
    engines = {"A": lambda: measure.run_ours(samples, scorer),
               "B": lambda: baselines.per_window(samples, rate, windows, model),
               "C": lambda: baselines.sliding(samples, rate, model)}
    runs: dict[str, list[measure.Measurement]] = {name: [] for name in engines}
    cold, replays = [], []
    short_clip = stream.clips[0][2]
    with tempfile.TemporaryDirectory() as tmp:
        stream_file = Path(tmp) / "stream.wav"
        sf.write(stream_file, samples, rate, subtype="FLOAT")
        measure.cold_start_s(short_clip, USER_ENV)   # warm the page cache
        for _ in range(reps):
            for name, decide in engines.items():
                runs[name].append(measure.measure(decide, audio_s))
            cold.append(measure.cold_start_s(short_clip, USER_ENV))
            replays.append(measure.replay_process(stream_file, USER_ENV))
    results = {name: summary(r) for name, r in runs.items()}
    b_over_a, c_over_a = (paired_ratios(runs[name], runs["A"]) for name in "BC")
    window_share = sum(end - start for start, end in windows) / len(samples)
    return {"engines": results, "b_over_a": float(np.median(b_over_a)), "c_over_a": float(np.median(c_over_a)),
            "b_over_a_range": [min(b_over_a), max(b_over_a)], "c_over_a_range": [min(c_over_a), max(c_over_a)],
            "window_share": window_share, "b_cpu_ms_per_window_s": results["B"]["cpu_ms_per_audio_s"] / window_share,
            "cold_start_s": float(np.median(cold)), "cold_start_file": short_clip.name,
            "peak_rss_mb": float(np.median([r.peak_rss_mb for r in replays])),
            "replay_cpu_ms_per_audio_s": float(np.median([1000 * r.cpu_s / audio_s for r in replays])),
            "model_mb": DEFAULT_MODEL.stat().st_size / 1e6, "windows": len(windows)}


def verdict(value: float, goal: float, at_least: bool = False) -> str:
    """``ok`` or ``MISSED``; nothing for a missing figure."""
    if not math.isfinite(value):
        return ""
    return "ok" if (value >= goal if at_least else value <= goal) else "MISSED"


def times(ratios: list[float], spec: str) -> str:
    """A ratio as ``1.33x``, a range as ``1.29-1.47x``; ``n/a`` if missing."""
    return "-".join(format(x, spec) for x in ratios) + "x" if all(map(math.isfinite, ratios)) else "n/a"


def report(stream: Stream, reps: int, r: dict) -> str:
    """The printed report: one table for A/B/C, the ratios, and our goals."""
    e, g = r["engines"], GOALS
    lines = [f"ser benchmark: {stream.duration_s / 60:.1f} min of speech with pauses, {len(stream.clips)} clips "
             f"from {stream.origin}; {r['windows']} VAD windows covering {r['window_share']:.0%} of it",
             f"machine: {machine()}; one thread (numpy/BLAS/onnxruntime pinned to 1)",
             versions(),
             f"{reps} interleaved repetitions (A B C A B C ...); medians; ratios are medians of per-repetition ratios",
             "",
             f"{'engine':56s} {'CPU ms/audio-s':>14s} {'wall RTF':>8s} {'decisions':>9s} {'p50 ms':>8s} {'p99 ms':>8s}"]
    for name, text in ENGINES.items():
        s = e[name]
        lines.append(f"{name}  {text:53s} {s['cpu_ms_per_audio_s']:14.3f} {s['realtime_factor']:8.5f} "
                     f"{s['decisions']:9d} {shown(s['latency_p50_ms'], '.2f'):>8s} "
                     f"{shown(s['latency_p99_ms'], '.2f'):>8s}")
    a = e["A"]
    rows = [(f"CPU per audio-second, B/A (per repetition: {times(r['b_over_a_range'], '.2f')})",
             times([r["b_over_a"]], ".2f"), f">= {g['b_over_a']:.0f}x",
             verdict(r["b_over_a"], g["b_over_a"], at_least=True)),
            (f"CPU per audio-second, C/A (per repetition: {times(r['c_over_a_range'], '.1f')})",
             times([r["c_over_a"]], ".1f"), f">= {g['c_over_a']:.0f}x",
             verdict(r["c_over_a"], g["c_over_a"], at_least=True)),
            ("A: CPU per audio-second", f"{a['cpu_ms_per_audio_s']:.3f} ms", f"<= {g['cpu_ms_per_audio_s']} ms",
             verdict(a["cpu_ms_per_audio_s"], g["cpu_ms_per_audio_s"])),
            ("A: decision latency p99", f"{shown(a['latency_p99_ms'], '.2f')} ms", f"<= {g['latency_p99_ms']:.0f} ms",
             verdict(a["latency_p99_ms"], g["latency_p99_ms"])),
            (f"cold start to first event ({r['cold_start_file']})", f"{r['cold_start_s']:.3f} s",
             f"<= {g['cold_start_s']} s", verdict(r["cold_start_s"], g["cold_start_s"])),
            ("peak RSS, `ser replay` of the whole stream", f"{r['peak_rss_mb']:.1f} MB",
             f"<= {g['peak_rss_mb']:.0f} MB", verdict(r["peak_rss_mb"], g["peak_rss_mb"])),
            ("model size", f"{r['model_mb']:.2f} MB", f"<= {g['model_mb']:.0f} MB",
             verdict(r["model_mb"], g["model_mb"])),
            ("B per window-second (the 3.9 ms reference is per clip-second)",
             f"{r['b_cpu_ms_per_window_s']:.3f} ms", "", ""),
            ("`ser replay` process CPU per audio-second (start-up, decoding)",
             f"{r['replay_cpu_ms_per_audio_s']:.3f} ms", "", "")]
    lines += ["", f"{'figure':64s} {'measured':>10s} {'goal':>10s}"]
    lines += [f"{name:64s} {value:>10s} {goal:>10s}  {ok}".rstrip() for name, value, goal, ok in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_stream", description=__doc__.split("\n\n")[0])
    stream_arguments(parser)
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of the clip order and pauses, 0 or more (default 0)")
    parser.add_argument("--live-seconds", type=float_range(*live_cpu.SECONDS, zero=True), default=60.0,
                        help="seconds of speech played to `ser live` per mode on the virtual microphone, "
                             f"{live_cpu.SECONDS[0]:g}-{live_cpu.SECONDS[1]:g}, at most the stream's length, "
                             "measured last (default 60; 0 skips it)")
    parser.add_argument("--json", type=output_file, help="also write the figures as JSON to this path")
    args = parser.parse_args(argv)
    stream = stream_or_usage_error(parser, args.data, args.minutes, DEFAULT_SPEC.sample_rate, args.seed)
    if args.live_seconds > stream.duration_s:
        print(f"bench_stream: warning: `ser live` will hear the whole stream, {stream.duration_s:.1f} s, "
              f"not {args.live_seconds:g} s (--live-seconds)", file=sys.stderr, flush=True)
    results = benchmark(stream, args.reps)
    print(report(stream, args.reps, results), flush=True)
    if args.live_seconds:
        try:
            live = live_cpu.live_cpu(stream, args.live_seconds, USER_ENV)
            results["live"] = [vars(f) for f in live]
            print("\n" + live_cpu.report(live))
        except VirtualMicUnavailable as exc:
            print(f"\n`ser live` CPU not measured: no virtual microphone ({exc})")
        except RuntimeError as exc:   # the figures above are kept
            print(f"\n`ser live` CPU not measured: {exc}")
    if args.json:
        write_json(args.json, {"machine": machine(), "versions": versions(), "reps": args.reps,
                               "audio_s": stream.duration_s, "origin": stream.origin, "clips": len(stream.clips),
                               "seed": args.seed, **results})
    return 0


if __name__ == "__main__":
    run_command("bench_stream", main)
