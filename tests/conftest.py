"""Shared fixtures: a tiny real ONNX model built on the fly, and synthetic audio."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser_train.frame_model import torch_available

REPO = Path(__file__).resolve().parents[1]
SHARED_RAVDESS = REPO.parent / "shared" / "data" / "ravdess"
LABELS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
needs_torch = pytest.mark.skipif(not torch_available(), reason="needs PyTorch for the frame CNN (pip install torch; "
                                                               "CI installs the CPU build)")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real two-head ONNX model with a valid card, fitted on random vectors (fast, no corpus)."""
    from sklearn.linear_model import LogisticRegression

    from realtime.adapt import AdaptConfig, SpeakerAdapter
    from realtime.features import DEFAULT_SPEC
    from ser_train.export import merge_heads, write_model
    from ser_train.fit import FitConfig, model_card

    rng = np.random.default_rng(0)
    x = rng.standard_normal((160, 2 * DEFAULT_SPEC.dim)).astype(np.float32)
    emotion = LogisticRegression(max_iter=200).fit(x, np.arange(160) % len(LABELS))
    gender = LogisticRegression(max_iter=200).fit(x, np.arange(160) % 2)
    adapter = SpeakerAdapter(np.zeros(DEFAULT_SPEC.dim), np.ones(DEFAULT_SPEC.dim), AdaptConfig())
    out = tmp_path_factory.mktemp("model") / "tiny"
    card = model_card("tiny", LABELS, adapter, ["synthetic"], FitConfig(), {})
    onnx_path, _ = write_model(out, merge_heads(emotion, gender, 2 * DEFAULT_SPEC.dim), card)
    return onnx_path


def bursts(rate: int = 16000, total_s: float = 6.0, spans: tuple[tuple[float, float, str], ...] = ()) -> np.ndarray:
    """Silence with bursts at the given seconds: ``"tone"`` (220 Hz), ``"noise"`` (white) or
    ``"speechlike"`` (white noise modulated at a syllable rate of 4 Hz, dipping 20 dB as speech does)."""
    rng = np.random.default_rng(1)
    x = np.zeros(int(total_s * rate), dtype=np.float32)
    for start, end, kind in spans:
        a, b = int(start * rate), int(end * rate)
        t = np.arange(b - a) / rate
        if kind == "tone":
            x[a:b] = 0.3 * np.sin(2 * np.pi * 220 * t)
        else:
            envelope = 0.55 - 0.45 * np.cos(2 * np.pi * 4 * t) if kind == "speechlike" else 1.0
            x[a:b] = 0.2 * envelope * rng.standard_normal(b - a)
    return x


@pytest.fixture
def clip_conditions(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """What ``evaluate`` hands each clip's replay (gain, noise, line, room), one dict per clip, in order."""
    from ser_train import evaluate

    seen, replay = [], evaluate.clip_probs

    def spy(pipeline, path, gain_db=0.0, noise=None, line=None, room=None):
        seen.append({"gain_db": gain_db, "noise": noise, "line": line, "room": room})
        return replay(pipeline, path, gain_db, noise, line, room)

    monkeypatch.setattr(evaluate, "clip_probs", spy)
    return seen


@pytest.fixture
def burst_file(tmp_path: Path) -> Path:
    """A 16 kHz WAV with three bursts, for CLI-level tests."""
    path = tmp_path / "bursts.wav"
    sf.write(path, bursts(spans=((0.5, 1.7, "noise"), (2.5, 3.5, "tone"), (4.2, 5.4, "noise"))), 16000)
    return path


def copy_model(src: Path, dst_dir: Path) -> Path:
    dst = dst_dir / src.name
    shutil.copy(src, dst)
    shutil.copy(src.with_suffix(".json"), dst.with_suffix(".json"))
    return dst


def edit_card(model: Path, **changes) -> None:
    card_path = model.with_suffix(".json")
    card = json.loads(card_path.read_text())
    for key, value in changes.items():
        if value is None:
            card.pop(key)
        else:
            card[key] = value
    card_path.write_text(json.dumps(card))
