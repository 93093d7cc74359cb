"""Background noise and room reverberation for training copies and evaluation replays.

RAVDESS is recorded in a studio: between words its signal is close to digital silence
(about -100 dBFS), while a live microphone hears a room. Noise is set against the
speaker's median active speech level, so within one session the noise floor stays put
while loud and quiet emotions move above it, as in a real room. A :class:`Room` adds the
room's echo: a speaker a metre or two from the microphone, heard with reverberation.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from realtime.sources import sound_path
from ser_train.corpora import Clip

log = logging.getLogger(__name__)
COLOURS = {"white": 0.0, "pink": 1.0, "brown": 2.0}   # noise power falls as 1 / f ** exponent
FRAME_S = 0.02


@dataclass(frozen=True)
class Noise:
    """Noise ``snr_db`` below ``reference_rms`` (a speaker's active speech level), coloured by ``exponent``."""

    snr_db: float
    exponent: float
    reference_rms: float
    seed: int

    def mix(self, samples: np.ndarray, gain_db: float = 0.0) -> np.ndarray:
        """``samples`` (played ``gain_db`` louder) plus this noise, also ``gain_db`` louder; clipped at full scale."""
        rms = self.reference_rms * 10.0 ** ((gain_db - self.snr_db) / 20)
        noise = coloured_noise(len(samples), self.exponent, np.random.default_rng(self.seed))
        return np.clip(samples + (rms * noise).astype(np.float32), -1.0, 1.0)


@dataclass(frozen=True)
class Room:
    """A reverberant room: the direct sound, then (after ``PRE_DELAY_S``) a diffuse tail that falls 60 dB
    in ``rt60_s``; exponentially decaying Gaussian noise, drawn from ``seed``. ``drr_db`` is the
    direct-to-reverberant energy ratio: 0 dB (the default) is a speaker near the room's critical distance,
    higher is a closer microphone."""

    rt60_s: float
    seed: int
    drr_db: float = 0.0
    PRE_DELAY_S = 0.005

    def impulse_response(self, rate: int) -> np.ndarray:
        """Unit-energy impulse response at ``rate``: direct path first, then the tail."""
        n, delay = max(1, int(self.rt60_s * rate)), int(self.PRE_DELAY_S * rate)
        tail = np.random.default_rng(self.seed).standard_normal(n) * np.exp(-np.log(1e3) * np.arange(n) / n)
        direct_share = 1.0 / (1.0 + 10.0 ** (-self.drr_db / 10))
        response = np.zeros(delay + n)
        response[0] = np.sqrt(direct_share)
        response[delay:] += tail * np.sqrt((1.0 - direct_share) / np.sum(tail ** 2))
        return response

    def apply(self, samples: np.ndarray, rate: int) -> np.ndarray:
        """``samples`` heard in this room, same length (the echo after the clip's end is cut, as by a recording)."""
        response = self.impulse_response(rate)
        size = 1 << int(np.ceil(np.log2(len(samples) + len(response) - 1)))
        heard = np.fft.irfft(np.fft.rfft(samples, size) * np.fft.rfft(response, size), size)[:len(samples)]
        return np.clip(heard, -1.0, 1.0).astype(np.float32)


def coloured_noise(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of unit-RMS noise whose power falls as ``1 / f ** exponent`` (no DC)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    bins = np.arange(len(spectrum), dtype=np.float64)
    spectrum[1:] *= bins[1:] ** (-exponent / 2)
    spectrum[0] = 0.0
    noise = np.fft.irfft(spectrum, n)
    power = float(np.mean(noise ** 2))
    return noise / np.sqrt(power) if power > 0 else noise


def active_rms(samples: np.ndarray, rate: int) -> float:
    """RMS over the louder half of ``samples``' 20 ms frames: the level of the speech, not of the pauses."""
    size = max(1, int(rate * FRAME_S))
    frames = samples[: len(samples) // size * size].astype(np.float64).reshape(-1, size)
    if not len(frames):
        return 0.0
    power = np.sort((frames ** 2).mean(axis=1))
    return float(np.sqrt(power[len(power) // 2:].mean()))


def speaker_levels(clips: Iterable[Clip]) -> dict[str, float]:
    """Each speaker's median active RMS over their clips; unreadable clips are logged and left out."""
    levels: dict[str, list[float]] = defaultdict(list)
    for clip in clips:
        try:
            samples, rate = sf.read(sound_path(clip.path), dtype="float32", always_2d=True)
        except (sf.SoundFileError, OSError, RuntimeError) as exc:
            log.warning("no level for %s: %s", clip.path, exc)
            continue
        levels[clip.speaker].append(active_rms(samples.mean(axis=1), rate))
    return {speaker: float(np.median(values)) for speaker, values in levels.items()}
