"""Voice activity: per-frame speech decisions and a hysteresis windower.

A frame is speech when webrtcvad says so *and* its energy is ``margin_db`` above
the noise floor (the quietest frame of the last ``noise_window_s``) and above an
absolute floor. The gate removes webrtcvad's hangover over silence (measured:
70-160 ms after a burst ends), so window edges land within one frame of the true
ones, and it adapts to quiet recordings and noisy rooms alike.

By default only the frames that pass the gate reach webrtcvad. Its adaptive noise
model then never hears the background, and it rejects quiet speech: of RAVDESS's
1200 clips played 10 dB quieter, 47 get no window at all. With
``webrtc_hears_silence`` webrtcvad hears every frame and the gate applies after it:
9 such clips. A model's card says which its features were made with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import webrtcvad

WEBRTC_RATES = (8000, 16000, 32000, 48000)


@dataclass(frozen=True)
class VadConfig:
    """Windowing parameters; times are converted to samples at construction."""

    aggressiveness: int = 0
    energy_floor_dbfs: float = -70.0
    margin_db: float = 10.0
    noise_window_s: float = 5.0
    min_silence_ms: float = 300.0
    preroll_ms: float = 100.0
    min_window_s: float = 0.5
    max_window_s: float = 8.0
    update_s: float = 1.0
    webrtc_hears_silence: bool = False   # webrtcvad hears every frame, not only those that pass the gate

    def __post_init__(self) -> None:
        if not 0 <= self.aggressiveness <= 3:
            raise ValueError(f"aggressiveness must be 0..3, got {self.aggressiveness}")
        if not 0 < self.min_window_s < self.max_window_s:
            raise ValueError("need 0 < min_window_s < max_window_s")
        if self.update_s <= 0 or self.min_silence_ms <= 0 or self.preroll_ms < 0:
            raise ValueError("update_s and min_silence_ms must be positive, preroll_ms non-negative")


@dataclass(frozen=True)
class WindowEvent:
    """A window boundary in stream samples: ``kind`` is speech_start, partial or segment."""

    kind: str
    start: int
    end: int


class FrameVad:
    """Speech/non-speech per frame of ``frame_samples`` (10, 20 or 30 ms)."""

    def __init__(self, sample_rate: int, frame_samples: int, config: VadConfig = VadConfig()) -> None:
        if sample_rate not in WEBRTC_RATES or frame_samples * 1000 // sample_rate not in (10, 20, 30):
            raise ValueError(f"webrtcvad needs 10/20/30 ms frames at {WEBRTC_RATES} Hz")
        self.sample_rate = sample_rate
        self.frame_samples = frame_samples
        self._aggressiveness = config.aggressiveness
        self._hears_silence = config.webrtc_hears_silence
        # the gate compares powers: x dB above the floor is a power 10 ** (x / 10) times the floor's
        self._absolute_power = 10.0 ** (config.energy_floor_dbfs / 10)
        self._margin_ratio = 10.0 ** (config.margin_db / 10)
        self._history = max(1, int(round(config.noise_window_s * sample_rate / frame_samples)))
        self.reset()

    def reset(self) -> None:
        """Start a new stream: webrtcvad's adaptive state too, so a stream's frames never depend on an earlier one."""
        self._vad = webrtcvad.Vad(self._aggressiveness)
        self._pending = np.zeros(0, dtype=np.float32)
        self._recent_power = np.full(self._history - 1, np.inf)

    def _loud(self, wide: np.ndarray, mean: np.ndarray) -> np.ndarray:
        """Indices of the frames ``wide`` (float64) that pass the energy gate (DC excluded); each
        frame's noise floor uses only frames up to itself."""
        power = np.add.reduce(np.multiply(wide, wide), axis=1) / self.frame_samples - mean * mean
        power = np.maximum(power, 0.0, out=power)
        power += 1e-12
        recent = np.concatenate((self._recent_power, power))
        self._recent_power = recent[len(power):]
        floor = sliding_min(recent, self._history)
        floor *= self._margin_ratio
        return (power >= np.maximum(floor, self._absolute_power, out=floor)).nonzero()[0]

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Return one boolean per frame completed by ``samples``.

        Only frames that pass the energy gate reach webrtcvad (its state sees no others), unless
        ``webrtc_hears_silence``: then it hears them all, and a frame is speech if it also passes the gate.
        """
        buf = samples.astype(np.float32, copy=False)
        if len(self._pending):
            buf = np.concatenate((self._pending, buf))
        n = len(buf) // self.frame_samples
        self._pending = buf[n * self.frame_samples:].copy()
        speech = np.zeros(n, dtype=bool)
        if n == 0:
            return speech
        wide = buf[:n * self.frame_samples].reshape(n, self.frame_samples).astype(np.float64)
        mean = np.add.reduce(wide, axis=1) / self.frame_samples  # a DC offset is not speech
        loud = self._loud(wide, mean)
        heard = np.arange(n) if self._hears_silence else loud
        if len(heard):
            centred = np.subtract(wide[heard], mean[heard, None])   # in place from here: no temporaries
            np.minimum(np.maximum(centred, -1.0, out=centred), 1.0, out=centred)
            pcm = np.multiply(centred, 32767.0, out=centred).astype(np.int16)
            is_speech, rate = self._vad.is_speech, self.sample_rate
            speech[heard] = [is_speech(frame, rate) for frame in pcm.view(np.uint8)]  # rows of bytes
        if self._hears_silence:
            passed = np.zeros(n, dtype=bool)
            passed[loud] = True
            speech &= passed
        return speech


def sliding_min(x: np.ndarray, width: int) -> np.ndarray:
    """``out[i] = min(x[i:i + width])`` for every full window, shape ``(len(x) - width + 1,)``.

    Every window with fewer outputs than ``width`` contains ``x[n_out - 1:width]``, so it
    is the suffix minimum left of ``n_out`` joined with the prefix minimum from there:
    two passes over ``x``. Longer inputs go in pieces.
    """
    n_out = len(x) - width + 1
    if width == 1:
        return x.copy()
    if n_out >= width:
        step = width - 1
        return np.concatenate([sliding_min(x[i:i + step + width - 1], width) for i in range(0, n_out, step)])
    left = np.minimum.accumulate(x[n_out - 1::-1])[::-1]
    right = np.minimum.accumulate(x[n_out:])
    return np.minimum(left, right[width - 1 - n_out:])


class Windower:
    """Hysteresis state machine turning frame decisions into windows.

    Opens on a speech frame (keeping ``preroll_ms`` before it), closes after
    ``min_silence_ms`` of non-speech at the end of the last speech frame, splits at
    ``max_window_s``, and drops windows shorter than ``min_window_s``. A window is
    announced (``speech_start``) once it reaches ``min_window_s``; after that a
    ``partial`` is emitted every ``update_s`` until its ``segment``.
    """

    def __init__(self, sample_rate: int, frame_samples: int, config: VadConfig = VadConfig()) -> None:
        self.frame = frame_samples
        to_samples = lambda seconds: int(round(seconds * sample_rate))  # noqa: E731
        self.min_silence = to_samples(config.min_silence_ms / 1000)
        self.preroll = to_samples(config.preroll_ms / 1000)
        self.min_window = to_samples(config.min_window_s)
        self.max_window = to_samples(config.max_window_s)
        self.update = to_samples(config.update_s)
        self.reset()

    def reset(self) -> None:
        self.position = 0          # samples judged so far
        self.start: int | None = None
        self.speech_end = 0        # end of the last speech frame
        self.last_closed = 0       # pre-roll never reaches into the previous window
        self.announced = False
        self.next_update = 0

    def push(self, decisions: np.ndarray) -> list[WindowEvent]:
        """Advance by one frame per decision; return the window events they cause."""
        events: list[WindowEvent] = []
        if self.start is None and not np.count_nonzero(decisions):   # silence outside a window: nothing to track
            self.position += self.frame * len(decisions)
            return events
        for speech in decisions:
            frame_start = self.position
            self.position += self.frame
            if speech:
                if self.start is None:
                    self._open(max(frame_start - self.preroll, self.last_closed, 0))
                self.speech_end = self.position
            if self.start is None:
                continue
            if self.speech_end - self.start >= self.max_window:
                self._close(self.start + self.max_window, events)
                if self.speech_end > self.last_closed:
                    self._open(self.last_closed)
                continue
            if not self.announced and self.speech_end - self.start >= self.min_window:
                self.announced = True
                self.next_update = self.start + self.update
                events.append(WindowEvent("speech_start", self.start, self.speech_end))
            if self.announced and self.position >= self.next_update and self.position - self.speech_end < self.frame:
                events.append(WindowEvent("partial", self.start, self.position))
                self.next_update += self.update
            if self.position - self.speech_end >= self.min_silence:
                self._close(self.speech_end, events)
        return events

    def flush(self) -> list[WindowEvent]:
        """End of stream: close an open window as if silence followed."""
        events: list[WindowEvent] = []
        if self.start is not None:
            self._close(self.speech_end, events)
        return events

    def _open(self, start: int) -> None:
        self.start = start
        self.announced = False

    def _close(self, end: int, events: list[WindowEvent]) -> None:
        if end - self.start >= self.min_window:
            if not self.announced:
                events.append(WindowEvent("speech_start", self.start, end))
            events.append(WindowEvent("segment", self.start, end))
        self.last_closed = end
        self.start = None
        self.announced = False
