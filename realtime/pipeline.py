"""The one streaming pipeline: features, VAD windows, adaptation, scoring."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np

from realtime.adapt import Smoother, SpeakerAdapter
from realtime.channel import BandPass
from realtime.features import FeatureSpec, FeatureStream, functionals
from realtime.scorer import Scorer
from realtime.vad import FrameVad, VadConfig, WindowEvent, Windower

MAX_PUSH_S = 0.5              # longer pushes go in steps, so windows read their frames before the ring wraps


@dataclass(frozen=True)
class Event:
    """One pipeline output. Times are stream samples; sinks convert to seconds.

    ``emotion_probs``/``gender_probs`` are empty for ``speech_start``. ``vector``
    holds the raw window features (not serialised), for training and evaluation.
    """

    type: str
    start: int
    end: int
    emotion: str | None = None
    emotion_probs: dict[str, float] = field(default_factory=dict)
    gender: str | None = None
    gender_probs: dict[str, float] = field(default_factory=dict)
    smoothed_emotion: str | None = None
    latency_ms: float = 0.0
    adapted_windows: int = 0
    vector: np.ndarray | None = field(default=None, repr=False, compare=False)


class Window(NamedTuple):
    """A window event with its raw vector (None for ``speech_start``) and, when kept, its frames."""

    event: WindowEvent
    vector: np.ndarray | None
    frames: np.ndarray | None = None


class WindowFeaturizer:
    """Frame features and VAD windows over one stream; yields each window with its raw vector.

    With ``keep_frames`` each window also carries its frame matrix ``(n_frames, n_frame_columns)``.
    With ``band_hz`` (low, high) everything, VAD included, hears the stream through that pass band: a
    model trained on telephone-line audio hears any input as a telephone line would pass it.
    This is the part of the pipeline that training and evaluation share with serving.
    """

    def __init__(self, spec: FeatureSpec, vad: VadConfig = VadConfig(), keep_frames: bool = False,
                 band_hz: tuple[float, float] | None = None) -> None:
        history_s = vad.max_window_s + vad.min_silence_ms / 1000 + vad.preroll_ms / 1000 + 2.0
        self.spec = spec
        self.keep_frames = keep_frames
        self.features = FeatureStream(spec, capacity_s=history_s)
        self.frame_vad = FrameVad(spec.sample_rate, spec.hop_length, vad)
        self.windower = Windower(spec.sample_rate, spec.hop_length, vad)
        self._max_push = int(MAX_PUSH_S * spec.sample_rate)
        self.band = BandPass(*band_hz, spec.sample_rate) if band_hz else None

    def reset(self) -> None:
        """Start a new stream at sample 0."""
        if self.band is not None:
            self.band.reset()
        self.features.reset()
        self.frame_vad.reset()
        self.windower.reset()

    def push(self, samples: np.ndarray) -> list[Window]:
        """Consume mono samples; return the windows they complete."""
        return self._push(samples if self.band is None else self.band(samples))

    def flush(self) -> list[Window]:
        """End of stream: close any open window."""
        tail = [] if self.band is None else self._push(self.band.flush())
        return tail + [self._window(w) for w in self.windower.flush()]

    def _push(self, samples: np.ndarray) -> list[Window]:
        step = self._max_push
        if len(samples) > step:  # in steps, so each window reads its frames before the ring overwrites them
            return [window for i in range(0, len(samples), step) for window in self._push(samples[i:i + step])]
        self.features.push(samples)
        return [self._window(w) for w in self.windower.push(self.frame_vad.push(samples))]

    def _window(self, event: WindowEvent) -> Window:
        if event.kind == "speech_start":
            return Window(event, None)
        frames = self.features.window_frames(event.start, event.end)
        return Window(event, functionals(frames, self.spec), frames if self.keep_frames else None)


class Pipeline:
    """Push audio at the model's sample rate, get scored events.

    Parameters
    ----------
    scorer : Scorer
        Loaded model; its card fixes the feature spec and adaptation prior.
    vad : VadConfig or None
        Windowing parameters; None: the ones the model's card was trained with.
    adapt : bool
        Normalise with running session statistics (else each window with its own, shrunk towards the
        population; training's cold sessions are clips, the same for a clip of one window).
    """

    def __init__(self, scorer: Scorer, vad: VadConfig | None = None, adapt: bool = True) -> None:
        card = scorer.card
        self.scorer = scorer
        self.sample_rate = card.spec.sample_rate
        self.windows = WindowFeaturizer(card.spec, card.vad if vad is None else vad, keep_frames=card.uses_frames,
                                        band_hz=card.band_hz)
        adapt_config = replace(card.adapt, enabled=adapt)
        self.adapter = SpeakerAdapter(card.pop_mean, card.pop_std, adapt_config)
        self.frame_adapter = (SpeakerAdapter(card.frame_pop_mean, card.frame_pop_std, adapt_config)
                              if card.uses_frames else None)
        self.smoother = Smoother(card.labels)
        self.gender_smoother = Smoother(card.gender_labels)

    def reset_stream(self) -> None:
        """Start a new stream (sample 0) but keep the speaker's adaptation state."""
        self.windows.reset()

    def reset_session(self) -> None:
        """Start a new speaker session: stream state, adaptation and smoothing."""
        self.reset_stream()
        self.adapter.reset()
        if self.frame_adapter is not None:
            self.frame_adapter.reset()
        self.smoother.reset()
        self.gender_smoother.reset()

    def adapted_windows(self) -> int:
        """Windows of this session the adaptation has seen (0 with it off: each window stands alone)."""
        return self.adapter.windows_seen if self.adapter.config.enabled else 0

    def push(self, samples: np.ndarray) -> list[Event]:
        """Consume float32 mono samples; return the events they complete."""
        began = time.perf_counter()
        return [self._event(w, began) for w in self.windows.push(samples)]

    def flush(self) -> list[Event]:
        """End of stream: close any open window."""
        began = time.perf_counter()
        return [self._event(w, began) for w in self.windows.flush()]

    def _event(self, found: Window, began: float) -> Event:
        window, vector, frames = found
        if vector is None:
            return Event("speech_start", window.start, window.end, adapted_windows=self.adapted_windows())
        pending = window.kind != "segment"   # a partial counts once its segment closes
        if not pending:
            self.adapter.update(vector)
            if self.frame_adapter is not None:
                self.frame_adapter.update(frames)
        frame_input = None if self.frame_adapter is None else self.frame_adapter.model_input(frames, pending)[None]
        emotion, gender = self.scorer.score(self.adapter.model_input(vector, pending)[None, :], frame_input)
        card = self.scorer.card
        smoothed = self.smoother.push(emotion[0])
        gender_label, gender_probs = None, {}
        if card.gender_trained:  # a model trained on one gender reports none
            self.gender_smoother.push(gender[0])
            gender_label = card.gender_labels[int(np.argmax(gender[0]))]
            gender_probs = dict(zip(card.gender_labels, gender[0].round(4).tolist()))
        return Event(window.kind, window.start, window.end,
                     emotion=card.labels[int(np.argmax(emotion[0]))],
                     emotion_probs=dict(zip(card.labels, emotion[0].round(4).tolist())),
                     gender=gender_label, gender_probs=gender_probs,
                     smoothed_emotion=smoothed, latency_ms=(time.perf_counter() - began) * 1000.0,
                     adapted_windows=self.adapted_windows(), vector=vector)
