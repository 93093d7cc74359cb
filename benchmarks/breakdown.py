"""Where our engine's time goes, and how far B/A could go: A's loop with parts of it made free, beside B.

A runs as in bench_stream. A1 is A with the model free: constant probabilities, no ONNX. A2 is A1 with the
frame features free too: each batch of frames is a copy of real frames computed once, so there is no STFT,
filterbank or pitch, while the VAD, the windows, the functionals, adaptation, the level meter and the events run
as before. So B/A2 is the most B/A could be on this stream, for this engine's loop with a model and frame
features that cost nothing. Repetitions are interleaved (A A1 A2 B ...) and medians reported; a ratio is the
median of each repetition's ratio, a part's cost the difference of two medians. Run from the repository root::

    python -m benchmarks.breakdown [--data DIR] [--minutes 10] [--reps 5] [--json PATH]
"""

from __future__ import annotations

from benchmarks.threads import pin_one_thread

pin_one_thread()   # before numpy

import argparse  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks import baselines, measure  # noqa: E402
from benchmarks.arguments import output_file, stream_arguments  # noqa: E402
from benchmarks.bench_stream import WARMUP_S, machine, paired_ratios, prepare_baselines, times, versions  # noqa: E402
from benchmarks.command import run_command, write_json  # noqa: E402
from benchmarks.corpus import Stream, stream_or_usage_error  # noqa: E402
from realtime.features import DEFAULT_SPEC, FeatureSpec, FeatureStream  # noqa: E402
from realtime.pipeline import Pipeline  # noqa: E402
from realtime.scorer import DEFAULT_MODEL, Scorer  # noqa: E402

ENGINES = {"A": "ours, as bench_stream runs it",
           "A1": "ours, the model free (no ONNX)",
           "A2": "ours, the model and the frame features free",
           "B": "librosa recipe + sklearn MLP, once per VAD window"}
PARTS = (("the model (A - A1)", "A", "A1"), ("the frame features (A1 - A2)", "A1", "A2"),
         ("the rest: VAD, windows, functionals, adaptation, meter, events (A2)", "A2", None))


class FreeModel(Scorer):
    """A model's card and checks, scoring at no cost: every window gets uniform probabilities."""

    def score(self, x: np.ndarray, frames: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        emotions, genders = len(self.card.labels), len(self.card.gender_labels)
        return np.full((len(x), emotions), 1.0 / emotions), np.full((len(x), genders), 1.0 / genders)


class FreeFrames(FeatureStream):
    """Frame features without their computation: each batch is ``template``'s first rows, real frames computed once
    (audio storage and framing still run)."""

    def __init__(self, spec: FeatureSpec, capacity_s: float, template: np.ndarray) -> None:
        super().__init__(spec, capacity_s)
        self.template = np.resize(template, (self.batch_frames, template.shape[1]))   # repeated to a whole batch

    def _compute(self, framed: np.ndarray) -> np.ndarray:
        return self.template[:len(framed)]


def real_frames(stream: Stream, window: tuple[int, int], spec: FeatureSpec) -> np.ndarray:
    """The frames of one window of the stream, for :class:`FreeFrames` to repeat."""
    features = FeatureStream(spec, capacity_s=(window[1] - window[0]) / spec.sample_rate + 1.0)
    features.push(stream.samples[window[0]:window[1]])
    return features.window_frames(0, window[1] - window[0])


def free_frames_pipeline(scorer: Scorer, template: np.ndarray) -> Pipeline:
    """``Pipeline(scorer)`` whose frame features are :class:`FreeFrames` repeating ``template``, holding as much
    history."""
    pipeline = Pipeline(scorer)
    held = pipeline.windows.features
    spec = held.spec
    pipeline.windows.features = FreeFrames(spec, held.frames.capacity * spec.hop_length / spec.sample_rate, template)
    return pipeline


def engines(samples: np.ndarray, rate: int, windows: list[tuple[int, int]], model: baselines.MLPClassifier,
            ours: Scorer, free: FreeModel, template: np.ndarray) -> dict[str, Callable[[], list[float]]]:
    """Each engine's run over ``samples``, returning its decision latencies (B's only over ``windows``)."""
    return {"A": lambda: measure.run_ours(samples, ours),
            "A1": lambda: measure.run_ours(samples, free),
            "A2": lambda: measure.run_ours(samples, free, pipeline=free_frames_pipeline(free, template)),
            "B": lambda: baselines.per_window(samples, rate, windows, model)}


def breakdown(stream: Stream, reps: int) -> dict:
    """Interleaved repetitions of A, A1, A2 and B; median CPU ms per audio-second and B's ratio to each."""
    ours, free = Scorer(DEFAULT_MODEL), FreeModel(DEFAULT_MODEL)
    windows, model = prepare_baselines(stream, ours, "breakdown")   # also B's warm-up
    template = real_frames(stream, max(windows, key=lambda w: w[1] - w[0]), ours.card.spec)
    warm = engines(stream.samples[:int(WARMUP_S * stream.rate)], stream.rate, [], model, ours, free, template)
    for name in ("A", "A1", "A2"):
        warm[name]()
    timed = engines(stream.samples, stream.rate, windows, model, ours, free, template)
    runs: dict[str, list[measure.Measurement]] = {name: [] for name in ENGINES}
    for _ in range(reps):
        for name, decide in timed.items():
            runs[name].append(measure.measure(decide, stream.duration_s))
    cpu = {name: float(np.median([r.cpu_ms_per_audio_s for r in runs[name]])) for name in ENGINES}
    ratios = {name: paired_ratios(runs["B"], runs[name]) for name in ENGINES if name != "B"}
    return {"cpu_ms_per_audio_s": cpu, "b_over": {name: float(np.median(r)) for name, r in ratios.items()},
            "b_over_range": {name: [min(r), max(r)] for name, r in ratios.items()},
            "window_share": sum(end - start for start, end in windows) / len(stream.samples), "windows": len(windows)}


def report(stream: Stream, reps: int, r: dict) -> str:
    """The printed report: each engine with B's ratio to it, then what each part of A costs."""
    cpu = r["cpu_ms_per_audio_s"]
    lines = [f"ser breakdown: {stream.duration_s / 60:.1f} min of speech with pauses from {stream.origin}; "
             f"{r['windows']} VAD windows covering {r['window_share']:.0%} of it",
             f"machine: {machine()}; one thread", versions(),
             f"{reps} interleaved repetitions (A A1 A2 B ...); medians; ratios are medians of per-repetition ratios",
             "", f"{'engine':56s} {'CPU ms/audio-s':>14s}   B / this (per repetition)"]
    for name, text in ENGINES.items():
        ratio = "" if name == "B" else f"{times([r['b_over'][name]], '.2f')} ({times(r['b_over_range'][name], '.2f')})"
        lines.append(f"{name:3s} {text:52s} {cpu[name]:14.3f}   {ratio}".rstrip())
    lines += ["", f"{'A, part by part':72s} {'CPU ms/audio-s':>14s}"]
    lines += [f"{text:72s} {cpu[whole] - (cpu[less] if less else 0.0):14.3f}" for text, whole, less in PARTS]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.breakdown", description=__doc__.split("\n\n")[0])
    stream_arguments(parser)
    parser.add_argument("--json", type=output_file, help="also write the figures as JSON to this path")
    args = parser.parse_args(argv)
    stream = stream_or_usage_error(parser, args.data, args.minutes, DEFAULT_SPEC.sample_rate)
    results = breakdown(stream, args.reps)
    print(report(stream, args.reps, results))
    if args.json:
        write_json(args.json, {"machine": machine(), "versions": versions(), "reps": args.reps,
                               "audio_s": stream.duration_s, "origin": stream.origin, **results})
    return 0


if __name__ == "__main__":
    run_command("breakdown", main)
