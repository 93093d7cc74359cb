"""End to end through a virtual microphone: speech played into a PulseAudio null sink is
recognised by `ser live --device pulse` exactly as `ser replay` recognises the same file."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import soundfile as sf

from benchmarks.vmic import VirtualMic, VirtualMicUnavailable, virtual_mic
from realtime.cli import demo_path

EXCERPT_S = (8.0, 21.0)       # three utterances of the demo whose labels do not depend on the capture offset
WAIT_S = 30.0


@pytest.fixture
def mic() -> Iterator[VirtualMic]:
    try:
        with virtual_mic() as running:
            yield running
    except VirtualMicUnavailable as exc:
        pytest.skip(f"no virtual microphone: {exc}")


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def segments(jsonl: Path) -> list[dict]:
    if not jsonl.exists():
        return []
    return [e for e in map(json.loads, jsonl.read_text().splitlines()) if e["type"] == "segment"]


def test_live_capture_matches_replay_of_the_same_audio(mic, tmp_path):
    clip = tmp_path / "speech.wav"
    audio, rate = sf.read(demo_path(), dtype="int16", start=int(EXCERPT_S[0] * 16000), stop=int(EXCERPT_S[1] * 16000))
    sf.write(clip, audio, rate, subtype="PCM_16")
    reference = tmp_path / "replay.jsonl"
    subprocess.run([sys.executable, "-m", "realtime.cli", "replay", str(clip), "--speed", "0", "--headless",
                    "--jsonl", str(reference)], check=True, capture_output=True, timeout=120)
    expected = segments(reference)
    assert [e["emotion"] for e in expected] == ["angry", "sad", "surprised"]

    events, stderr = tmp_path / "live.jsonl", tmp_path / "live.err"
    with stderr.open("w") as err:
        live = subprocess.Popen([sys.executable, "-m", "realtime.cli", "--log-level", "INFO", "live", "--device",
                                 "pulse", "--headless", "--jsonl", str(events)], env=mic.env, stderr=err)
    try:
        wait_for(lambda: "listening to pulse" in stderr.read_text() or live.poll() is not None, "ser live to listen")
        assert live.poll() is None, stderr.read_text()
        mic.play(clip)
        wait_for(lambda: len(segments(events)) >= len(expected), "the last segment")
        live.send_signal(signal.SIGINT)
        assert live.wait(WAIT_S) == 0, stderr.read_text()
    finally:
        if live.poll() is None:
            live.kill()
            live.wait()

    assert "summary:" in stderr.read_text() and "Traceback" not in stderr.read_text()
    got = segments(events)
    assert [e["emotion"] for e in got] == [e["emotion"] for e in expected]
    offsets = [g["start_s"] - e["start_s"] for g, e in zip(got, expected)]
    assert max(offsets) - min(offsets) < 0.2  # one capture offset, give or take a few VAD frames
    final = json.loads(events.read_text().splitlines()[-1])
    assert final["type"] == "stats" and final["dropped_blocks"] == 0
    assert 0 <= final["behind_s"] <= final["max_behind_s"]   # measured on a real device
