"""What people use today: the seeds' librosa recipe, scored by scikit-learn in Python.

B scores each VAD window once. C is the sliding design of the public "real-time"
demos: every ``SLIDE_EVERY_S`` it recomputes the recipe on the last ``SLIDE_SPAN_S``.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import librosa
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier

SLIDE_EVERY_S = 0.5
SLIDE_SPAN_S = 1.5


def recipe_features(y: np.ndarray, rate: int) -> np.ndarray:
    """The seeds' recipe, 180 values: means of MFCC (40), chroma (12) and mel power (128) over ``y``."""
    stft = np.abs(librosa.stft(y))
    mfcc = librosa.feature.mfcc(y=y, sr=rate, n_mfcc=40).mean(axis=1)
    chroma = librosa.feature.chroma_stft(S=stft, sr=rate).mean(axis=1)
    mel = librosa.feature.melspectrogram(y=y, sr=rate).mean(axis=1)
    return np.concatenate((mfcc, chroma, mel))


def recipe_label(path: Path | None) -> str:
    """A training label for a clip: the RAVDESS emotion field, else the folder name (``ROOT/<label>/x.wav``)."""
    if path is None:
        return "pause"
    fields = path.stem.split("-")
    return fields[2] if len(fields) == 7 else path.parent.name


def fit_classifier(features: np.ndarray, labels: list[str]) -> MLPClassifier:
    """The recipe's classifier, the widely copied MLP (300 hidden units); fitted outside any timed region.

    With fewer than two distinct labels, alternating labels keep the model's size realistic.
    """
    if len(set(labels)) < 2:
        labels = [str(i % 2) for i in range(len(labels))]
    model = MLPClassifier(alpha=0.01, batch_size=min(256, len(labels)), hidden_layer_sizes=(300,), learning_rate="adaptive",
                          max_iter=500, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(features, labels)


def decide_ms(y: np.ndarray, rate: int, model: MLPClassifier) -> float:
    """Milliseconds to compute the recipe on ``y`` and score it: one decision."""
    began = time.perf_counter()
    model.predict_proba(recipe_features(y, rate)[None, :])
    return (time.perf_counter() - began) * 1000.0


def per_window(samples: np.ndarray, rate: int, windows: list[tuple[int, int]], model: MLPClassifier) -> list[float]:
    """B: one decision per closed VAD window; latency counts from the window's close."""
    return [decide_ms(samples[start:end], rate, model) for start, end in windows]


def sliding(samples: np.ndarray, rate: int, model: MLPClassifier) -> list[float]:
    """C: a decision on the last ``SLIDE_SPAN_S`` every ``SLIDE_EVERY_S``; latency counts from the update time."""
    span, every = int(SLIDE_SPAN_S * rate), int(SLIDE_EVERY_S * rate)
    return [decide_ms(samples[end - span:end], rate, model) for end in range(span, len(samples) + 1, every)]
