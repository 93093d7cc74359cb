"""Long runs and determinism: a 2 h file is streamed in bounded memory, a short soak keeps
memory flat and loses nothing, and real speech gives the same segments for any chunk size."""

from __future__ import annotations

import json
import struct
import tracemalloc
from pathlib import Path

from benchmarks.soak import clip_paths, soak
from realtime import cli
from realtime.sources import FileSource

TWO_HOURS_S = 7200


def sparse_wav(path: Path, seconds: int, rate: int) -> None:
    """A 16-bit mono WAV of digital silence, written as a sparse file (no disk, no time)."""
    size = seconds * rate * 2
    with path.open("wb") as f:
        f.write(b"RIFF" + struct.pack("<I", 36 + size) + b"WAVEfmt "
                + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16) + b"data" + struct.pack("<I", size))
        f.truncate(44 + size)


def test_two_hour_file_is_streamed_in_bounded_memory(tmp_path):
    path = tmp_path / "two_hours.wav"
    sparse_wav(path, TWO_HOURS_S, 8000)  # 8 kHz, so the soxr resampling path streams too
    source = FileSource(path, 16000, speed=0)
    assert source.duration_s == TWO_HOURS_S
    position = 0
    tracemalloc.start()
    try:
        for chunk in source:
            assert chunk.start == position
            position += len(chunk.samples)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert abs(position - TWO_HOURS_S * 16000) <= 16  # all of it, give or take the resampler's edge
    assert peak < 8 * 2 ** 20  # the decoded stream is 440 MB of float32; we hold a few blocks of it


def test_short_soak_loses_nothing_and_keeps_memory_flat():
    clips = clip_paths(None)  # the bundled demo: eight utterances per play
    report = soak(600.0, clips, warmup_s=120.0)
    assert report.audio_s == 600.0 and report.dropped_blocks == 0
    segments = round(report.events_per_hour["segment"] * report.audio_s / 3600)
    assert 8 * (report.clips - 1) <= segments <= 8 * report.clips
    assert report.events_per_hour["stats"] == 66.0  # one per minute of audio, and the final one
    assert report.growth_mb < 5.0


def test_a_soak_shorter_than_its_warm_up_reports_no_growth():
    report = soak(60.0, clip_paths(None), warmup_s=120.0)
    assert report.rss_warm_mb is None and report.growth_mb is None and report.rss_peak_mb > 0


def segment_events(path: Path, chunk: int, out: Path) -> list[dict]:
    jsonl = out / f"chunk{chunk}.jsonl"
    assert cli.main(["replay", str(path), "--speed", "0", "--chunk", str(chunk), "--headless",
                     "--jsonl", str(jsonl)]) == 0
    events = [json.loads(line) for line in jsonl.read_text().splitlines()]
    return [{k: v for k, v in e.items() if k != "latency_ms"} for e in events if e["type"] == "segment"]


def test_real_speech_gives_identical_segments_for_every_chunk_size(tmp_path):
    reference = segment_events(cli.demo_path(), 160, tmp_path)
    assert len(reference) == 8
    for chunk in (512, 1000, 4096):
        assert segment_events(cli.demo_path(), chunk, tmp_path) == reference
