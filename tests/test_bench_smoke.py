"""Smoke runs of the benchmarks: they finish and produce numbers (no timing is asserted)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


def run_module(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120)


WITHOUT_SHARED_DATA = ("import sys, pathlib; from benchmarks import bench_stream, corpus; "
                       "corpus.DEFAULT_DATA = pathlib.Path(sys.argv[1]); sys.exit(bench_stream.main(sys.argv[2:]))")


@pytest.mark.parametrize("corpus", ["default", "empty"])
def test_stream_benchmark_prints_every_figure(tmp_path: Path, corpus: str):
    """A short stream, once; ``empty`` is a clone without ../shared/data (the bundled demo is used)."""
    from benchmarks.corpus import DEFAULT_DATA

    if corpus == "default" and not DEFAULT_DATA.is_dir():
        pytest.skip("needs ../shared/data beside the repository (there in CI, not in a user's clone); "
                    "the 'empty' case runs this clone's fallback to the bundled demo")
    out = tmp_path / "figures.json"
    args = ("--minutes", "0.2", "--reps", "1", "--live-seconds", "0", "--json", str(out))
    if corpus == "empty":
        result = subprocess.run([sys.executable, "-c", WITHOUT_SHARED_DATA, str(tmp_path / "none"), *args], cwd=REPO,
                                capture_output=True, text=True, timeout=120)
    else:
        result = run_module("benchmarks.bench_stream", *args)
    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text())
    for name in "ABC":
        engine = figures["engines"][name]
        assert engine["decisions"] > 0
        assert all(math.isfinite(engine[key]) and engine[key] > 0 for key in
                   ("cpu_ms_per_audio_s", "realtime_factor", "latency_p50_ms", "latency_p99_ms"))
    for key in ("b_over_a", "c_over_a", "cold_start_s", "peak_rss_mb", "model_mb", "replay_cpu_ms_per_audio_s"):
        assert math.isfinite(figures[key]) and figures[key] > 0, key
    for ratio in ("b_over_a", "c_over_a"):   # the median of the per-repetition ratios lies within their range
        low, high = figures[f"{ratio}_range"]
        assert low <= figures[ratio] <= high
    assert "demo.flac" in result.stdout if corpus == "empty" else "demo.flac" not in result.stdout
    assert all(f"\n{name}  " in result.stdout for name in "ABC") and "cold start" in result.stdout


@pytest.mark.parametrize("args,needle", [(["--minutes", "nan"], "--minutes: expected a number from 0.01 to 60"),
                                         (["--seed", "-1"], "--seed: expected 0 or a positive"),
                                         (["--data", "{tmp}"], "no flac/wav/ogg/aiff/aif files there"),
                                         (["--json", "{tmp}/none/x.json"], "give a file in an existing folder")])
def test_stream_benchmark_refuses_bad_arguments_before_measuring(tmp_path: Path, args: list[str], needle: str):
    """A folder without audio is an error, not the demo in its place, and the --json path is checked first."""
    result = run_module("benchmarks.bench_stream", *(a.format(tmp=tmp_path) for a in args))
    assert result.returncode == 2 and needle in result.stderr and "Traceback" not in result.stderr


def test_live_cpu_on_the_virtual_microphone():
    result = run_module("benchmarks.live_cpu", "--seconds", "2")
    if result.returncode == 2 and "no virtual microphone" in result.stdout:
        pytest.skip(result.stdout.strip())
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if line.split()[:1] in (["headless"], ["dashboard"])]
    assert len(rows) == 2 and all(math.isfinite(float(row[1])) for row in rows)
    assert all(0 <= float(row[2]) <= float(row[1]) for row in rows)   # libpulse's thread is part of the process
    assert all(float(row[5]) >= 0 for row in rows)                    # how far behind the device it fell


def test_paced_benchmark_prints_a_figure_per_pause(tmp_path: Path):
    out = tmp_path / "paced.json"
    result = run_module("benchmarks.paced", "--seconds", "2", "--reps", "1", "--json", str(out))
    assert result.returncode == 0, result.stderr
    written = json.loads(out.read_text())
    for key in ("cpu_ms_per_audio_s", "numpy_add_us"):
        assert set(written[key]) == {"0.0", "0.01", "0.1"}
        assert all(math.isfinite(v) and v > 0 for v in written[key].values())
    assert "x back to back" in result.stdout and "100 ms" in result.stdout


def test_a_data_folder_may_hold_any_format_ser_replay_plays(tmp_path):
    import numpy as np
    import soundfile as sf

    from benchmarks.corpus import audio_files

    for name, fmt in (("a.wav", "WAV"), ("b.flac", "FLAC"), ("c.ogg", "OGG"), ("d.aiff", "AIFF"), ("e.AIF", "AIFF")):
        sf.write(tmp_path / name, np.zeros(1600, np.float32), 16000, format=fmt)
    (tmp_path / "notes.txt").write_text("not audio")
    assert [p.name for p in audio_files(tmp_path)] == ["a.wav", "b.flac", "c.ogg", "d.aiff", "e.AIF"]


def test_breakdown_prints_each_engine_and_part(tmp_path: Path):
    out = tmp_path / "breakdown.json"
    result = run_module("benchmarks.breakdown", "--minutes", "0.2", "--reps", "1", "--json", str(out))
    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text())
    assert set(figures["cpu_ms_per_audio_s"]) == {"A", "A1", "A2", "B"}
    assert all(math.isfinite(v) and v > 0 for v in figures["cpu_ms_per_audio_s"].values())
    for name in ("A", "A1", "A2"):
        low, high = figures["b_over_range"][name]
        assert math.isfinite(figures["b_over"][name]) and low <= figures["b_over"][name] <= high
    assert all(f"\n{name} " in result.stdout for name in ("A", "A1", "A2", "B"))
    assert "the model (A - A1)" in result.stdout and "the frame features (A1 - A2)" in result.stdout


def test_breakdown_variants_leave_out_what_they_say(monkeypatch: pytest.MonkeyPatch):
    """A runs the shipped model; A1 scores real window vectors without any ONNX call; A2 computes no frame (no pitch,
    so no STFT either) and its windows summarise the real frames it repeats; each runs through `run_ours`."""
    import numpy as np

    from benchmarks import breakdown, measure
    from benchmarks.corpus import load_stream
    from realtime.features import FeatureStream
    from realtime.scorer import DEFAULT_MODEL, Scorer

    ours, free = Scorer(DEFAULT_MODEL), breakdown.FreeModel(DEFAULT_MODEL)
    free._session = None                              # an ONNX call would fail
    spec = ours.card.spec
    stream = load_stream(None, 0.2, spec.sample_rate)
    window = max(measure.segment_windows(stream.samples, spec.sample_rate, spec.hop_length), key=lambda w: w[1] - w[0])
    template = breakdown.real_frames(stream, window, spec)
    assert np.mean(template[:, -2] >= spec.voicing_threshold) > 0.3   # speech: A2's windows get pitch statistics
    runs, events = [], []
    real_run = measure.run_ours

    def spy(samples, scorer, pause_s=0.0, pipeline=None):
        runs.append((scorer, pipeline))
        latencies = real_run(samples, scorer, pause_s, pipeline)
        events.append(len(latencies))
        return latencies

    monkeypatch.setattr(measure, "run_ours", spy)
    engines = breakdown.engines(stream.samples, spec.sample_rate, [], None, ours, free, template)
    engines["A"]()
    engines["A1"]()
    monkeypatch.setattr(FeatureStream, "_pitch", lambda *args: pytest.fail("A2 computed a frame"))
    engines["A2"]()
    assert [type(scorer) for scorer, _ in runs] == [Scorer, breakdown.FreeModel, breakdown.FreeModel]
    assert runs[0][1] is None and runs[1][1] is None and all(n > 0 for n in events)
    features = runs[2][1].windows.features
    assert isinstance(features, breakdown.FreeFrames) and features.frames.written > 0   # the run used that pipeline
    batch = np.resize(template, (features.batch_frames, template.shape[1]))
    held = features.frames.read(features.frames.written - 10, features.frames.written)
    assert any(np.array_equal(held, batch[k:k + 10]) for k in range(len(batch) - 9))
