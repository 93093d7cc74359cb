"""The one acoustic feature implementation, shared by training and serving.

Per hop, :class:`FeatureStream` turns audio into a frame vector (MFCC and their
deltas, energy, spectral shape, zero-crossing rate, pitch and voicing) with a
batched numpy STFT. :func:`functionals` summarises the frames of a window into
one fixed-length vector. Filterbanks are built with numpy, so the runtime needs
neither librosa nor numba.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields, replace
from functools import cached_property, lru_cache

import numpy as np

from realtime.ring import RingBuffer

EPS = 1e-10
# The pitch tracker's settings, added since version 2's first models, at their original values: the only fields a
# model's card may choose, and left out of the spec's digest while they hold these values
TRACKER_FIELDS = {"octave_cost": 0.0, "pitch_peaks_only": False}


@dataclass(frozen=True)
class FeatureSpec:
    """Everything that determines the feature vector; its hash guards model cards.

    The derived names and sizes are cached: features and functionals read them per call.
    """

    sample_rate: int = 16000
    frame_length: int = 640
    hop_length: int = 320
    n_fft: int = 1024
    n_mels: int = 40
    n_mfcc: int = 20
    fmin_hz: float = 50.0
    fmax_hz: float = 8000.0
    f0_min_hz: float = 75.0
    f0_max_hz: float = 500.0
    voicing_threshold: float = 0.45
    octave_cost: float = 0.0      # Praat's: each octave above f0_min_hz adds this to a lag's autocorrelation
    pitch_peaks_only: bool = False   # Praat's: only the autocorrelation's local maxima are pitch candidates
    delta_lag: int = 2
    percentiles: tuple[int, ...] = (10, 50, 90)
    version: int = 2

    def hash(self) -> str:
        """Short stable digest of the spec, stored in model cards. A field added since a version's first
        models is left out while it holds its original value, so their cards keep their digest."""
        kept = {k: v for k, v in asdict(self).items() if not (k in TRACKER_FIELDS and TRACKER_FIELDS[k] == v)}
        text = json.dumps(kept, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @cached_property
    def frame_names(self) -> tuple[str, ...]:
        """Names of the per-hop frame columns (before functionals)."""
        return (*(f"mfcc{i}" for i in range(self.n_mfcc)), *(f"dmfcc{i}" for i in range(self.n_mfcc)),
                "energy_db", "centroid", "bandwidth", "rolloff", "flatness", "flux", "zcr", "voicing", "f0_semitones")

    @cached_property
    def stat_names(self) -> tuple[str, ...]:
        return ("mean", "std", *(f"p{p}" for p in self.percentiles))

    @cached_property
    def names(self) -> tuple[str, ...]:
        """Names of the window vector's entries, in order."""
        general = (f"{f}_{s}" for f in self.frame_names[:-1] for s in self.stat_names)
        return (*general, *(f"f0_{s}" for s in self.stat_names), "voiced_fraction")

    @cached_property
    def dim(self) -> int:
        return len(self.frame_names) * len(self.stat_names) + 1


DEFAULT_SPEC = FeatureSpec()


def computable(spec: FeatureSpec) -> bool:
    """Whether this code computes ``spec``: the default spec with any non-negative octave cost, with or without
    peaks only (a model's card chooses its pitch tracker; every other setting is fixed by the code)."""
    return (replace(spec, **TRACKER_FIELDS) == DEFAULT_SPEC and 0.0 <= spec.octave_cost < np.inf
            and isinstance(spec.pitch_peaks_only, bool))


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney mel scale (linear below 1 kHz, logarithmic above), as librosa's default."""
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / (200.0 / 3)
    log_part = 15.0 + np.log(np.maximum(hz, 1e-9) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(hz >= 1000.0, log_part, mel)


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    return np.where(mel >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0)), mel * (200.0 / 3))


def mel_filterbank(spec: FeatureSpec) -> np.ndarray:
    """Slaney-normalised triangular filters, shape ``(n_mels, n_fft // 2 + 1)``."""
    fft_hz = np.linspace(0.0, spec.sample_rate / 2, spec.n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(spec.fmin_hz), hz_to_mel(spec.fmax_hz), spec.n_mels + 2))
    lower = (fft_hz[None, :] - edges[:-2, None]) / np.diff(edges)[:-1, None]
    upper = (edges[2:, None] - fft_hz[None, :]) / np.diff(edges)[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    return weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]


def dct_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Orthonormal DCT-II as a matrix, shape ``(n_out, n_in)``."""
    k = np.arange(n_out)[:, None]
    n = np.arange(n_in)[None, :]
    basis = np.cos(np.pi * k * (2 * n + 1) / (2 * n_in)) * np.sqrt(2.0 / n_in)
    basis[0] /= np.sqrt(2.0)
    return basis


@dataclass(frozen=True)
class _Workspace:
    """Preallocated per-hop arrays for one batch of frames; :meth:`first` slices them to ``n`` hops."""

    centred: np.ndarray           # (n, frame_length)
    windowed: np.ndarray          # (n, frame_length)
    spectrum: np.ndarray          # (n, bins), complex
    power: np.ndarray             # (n, bins)
    scratch: np.ndarray           # (n, bins)
    log_power: np.ndarray         # (n, bins)
    shape: np.ndarray             # (n + 1, bins): row 0 is the previous frame's normalised spectrum
    autocorrelation: np.ndarray   # (n, n_fft)

    @classmethod
    def allocate(cls, frames: int, spec: FeatureSpec) -> "_Workspace":
        bins = spec.n_fft // 2 + 1
        real = lambda width, rows=frames: np.zeros((rows, width))  # noqa: E731
        return cls(real(spec.frame_length), real(spec.frame_length), np.zeros((frames, bins), np.complex128),
                   real(bins), real(bins), real(bins), real(bins, frames + 1), real(spec.n_fft))

    def first(self, n: int) -> "_Workspace":
        return _Workspace(*(getattr(self, f.name)[:n + 1 if f.name == "shape" else n] for f in fields(self)))


class FeatureStream:
    """Per-hop frame features over an unbounded stream, computed when a window asks for them.

    Frame ``t`` covers samples ``[t * hop, t * hop + frame_length)`` of the stream,
    so results do not depend on how the audio is chunked. :meth:`push` only stores
    audio; frames are computed in batches by :meth:`frames_between`, so hops that no
    window covers (silence) cost nothing. After such a gap, ``context`` earlier frames
    are recomputed first, which makes every frame equal to a continuous computation.

    Parameters
    ----------
    spec : FeatureSpec
    capacity_s : float
        Seconds of audio and frame history kept for :meth:`window_frames`.
    """

    batch_frames = 64          # hops per numpy batch (a 1 s partial is 50): amortises per-call overhead

    def __init__(self, spec: FeatureSpec = DEFAULT_SPEC, capacity_s: float = 30.0) -> None:
        self.spec = spec
        self._window = np.hanning(spec.frame_length + 1)[:-1]
        self._mel = mel_filterbank(spec).T.copy()
        self._dct = dct_matrix(spec.n_mels, spec.n_mfcc).T.copy()
        self._freqs = np.linspace(0.0, spec.sample_rate / 2, spec.n_fft // 2 + 1)
        self._freqs_sq = self._freqs ** 2
        self._work = _Workspace.allocate(self.batch_frames, spec)
        self._mel_hz = mel_to_hz(np.linspace(hz_to_mel(spec.fmin_hz), hz_to_mel(spec.fmax_hz), spec.n_mels + 2))[2:]
        self._lag_min = int(np.floor(spec.sample_rate / spec.f0_max_hz))
        self._lag_max = int(np.ceil(spec.sample_rate / spec.f0_min_hz))
        win_ac = np.fft.irfft(np.abs(np.fft.rfft(self._window, spec.n_fft)) ** 2, spec.n_fft)
        self._window_ac = win_ac[:self._lag_max + 2] / win_ac[0]
        lags = np.arange(self._lag_min, self._lag_max + 1)
        self._octave_bonus = spec.octave_cost * np.log2(self._lag_max / lags)
        self.context = max(spec.delta_lag, 1)      # frames whose state a frame depends on (deltas, flux)
        capacity = int(np.ceil(capacity_s * spec.sample_rate / spec.hop_length))
        self.frames = RingBuffer(capacity, (len(spec.frame_names),), np.float64)
        self._audio = RingBuffer((capacity + self.context) * spec.hop_length + spec.frame_length, (), np.float64)
        self.reset()

    def reset(self) -> None:
        """Start a new stream at sample 0."""
        self._prev_mfcc = None
        self._prev_spectrum = None
        self._valid_from = 0   # frames [_valid_from, frames.written) hold continuous results
        self.frames.reset()
        self._audio.reset()

    @property
    def n_frames(self) -> int:
        """Frames whose audio has arrived (computed or not)."""
        spec = self.spec
        return max(0, (self._audio.written - spec.frame_length) // spec.hop_length + 1)

    def push(self, samples: np.ndarray) -> None:
        """Store mono samples (their frames are computed when a window asks for them)."""
        self._audio.write(samples)

    def frames_between(self, first: int, last: int) -> np.ndarray:
        """Frames ``[first, last)`` (computed now if needed), shape ``(last - first, n_frame_columns)``."""
        if last > first:
            self._compute_until(first, last)
        return self.frames.read(first, last)

    def _compute_until(self, first: int, last: int) -> None:
        written = self.frames.written
        if first < self._valid_from or first - self.context > written:
            start = max(first - self.context, 0)      # a gap: restart the state from context frames
            self._prev_mfcc = self._prev_spectrum = None
            self.frames.seek(start)
            self._valid_from = first if start > 0 else 0
        spec = self.spec
        for begin in range(self.frames.written, last, self.batch_frames):
            end = min(begin + self.batch_frames, last)
            audio = self._audio.read(begin * spec.hop_length, (end - 1) * spec.hop_length + spec.frame_length)
            framed = np.lib.stride_tricks.sliding_window_view(audio, spec.frame_length)[::spec.hop_length]
            self.frames.write(self._compute(framed))

    def _compute(self, framed: np.ndarray) -> np.ndarray:
        """Frame vectors for ``framed`` ``(n, frame_length)``, n <= batch_frames, with no large allocation.

        Every hop-sized array lives in :class:`_Workspace`: freshly allocated ones of this
        size come from mmap and page-fault on every batch (measured: half the cost).
        """
        spec, n, nm = self.spec, len(framed), self.spec.n_mfcc
        w = self._work.first(n)
        out = np.empty((n, len(spec.frame_names)))
        np.subtract(framed, framed.mean(axis=1, keepdims=True), out=w.centred)  # per-frame DC removal
        np.multiply(w.centred, self._window, out=w.windowed)
        np.fft.rfft(w.windowed, spec.n_fft, out=w.spectrum)
        power = np.square(w.spectrum.real, out=w.power)
        power += np.square(w.spectrum.imag, out=w.scratch)
        mel = power @ self._mel
        mfcc = np.matmul(10.0 * np.log10(mel + EPS), self._dct, out=out[:, :nm])
        history = mfcc[:1].repeat(spec.delta_lag, 0) if self._prev_mfcc is None else self._prev_mfcc
        stacked = np.vstack((history, mfcc))
        np.subtract(stacked[spec.delta_lag:], stacked[:-spec.delta_lag], out=out[:, nm:2 * nm])
        self._prev_mfcc = stacked[-spec.delta_lag:]

        total = power.sum(axis=1) + EPS
        centroid = power @ self._freqs / total
        cumulative = np.cumsum(mel, axis=1)
        shape = w.shape                       # row 0: the previous frame's normalised spectrum
        np.divide(power, total[:, None], out=shape[1:])
        shape[0] = shape[1] if self._prev_spectrum is None else self._prev_spectrum
        self._prev_spectrum = shape[-1].copy()
        change = np.subtract(shape[1:], shape[:-1], out=w.scratch)
        log_power = np.log(np.add(power, EPS, out=w.log_power), out=w.log_power)
        sign = np.signbit(w.centred)
        bins = power.shape[1]
        c = 2 * nm
        out[:, c] = 10.0 * np.log10(np.einsum("ij,ij->i", w.centred, w.centred) / spec.frame_length + EPS)
        out[:, c + 1] = centroid / 1000.0
        out[:, c + 2] = np.sqrt(np.maximum(power @ self._freqs_sq / total - centroid ** 2, 0.0)) / 1000.0
        out[:, c + 3] = self._mel_hz[np.argmax(cumulative >= 0.85 * cumulative[:, -1:], axis=1)] / 1000.0
        out[:, c + 4] = log_power.sum(axis=1) / bins - np.log(total / bins)    # spectral flatness
        out[:, c + 5] = np.sqrt(np.einsum("ij,ij->i", change, change))          # spectral flux
        out[:, c + 6] = np.count_nonzero(sign[:, 1:] != sign[:, :-1], axis=1) / (spec.frame_length - 1)
        out[:, c + 7], out[:, c + 8] = self._pitch(power, w.autocorrelation)
        return out

    def _pitch(self, power: np.ndarray, work: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Autocorrelation pitch (window-corrected, Boersma 1993), returning voicing in [0, 1] and F0 in semitones
        re 55 Hz. The peak is chosen with the spec's octave cost, which favours the shorter of two similar
        peaks (a period rather than two); voicing is the chosen peak's own height. With ``pitch_peaks_only`` the
        candidates are the local maxima in the search range, so an edge where the autocorrelation is still
        falling is none; a frame with no candidate reads unvoiced (voicing 0, F0 interpolated about the shortest
        lag: 500-508 Hz at the default range)."""
        ac = np.fft.irfft(power, self.spec.n_fft, out=work)[:, :self._lag_max + 2]
        ac = ac / (ac[:, :1] + EPS) / self._window_ac
        lo, hi = self._lag_min, self._lag_max
        rows = np.arange(len(ac))
        inner = ac[:, lo:hi + 1]
        score = inner + self._octave_bonus if self.spec.octave_cost else inner
        if self.spec.pitch_peaks_only:
            candidate = (inner >= ac[:, lo - 1:hi]) & (inner > ac[:, lo + 1:hi + 2])
            score = np.where(candidate, score, -np.inf)
        peak = lo + np.argmax(score, axis=1)
        if self.spec.octave_cost and not self.spec.pitch_peaks_only:
            mid = ac[rows, peak]       # the bonus's slope can leave the choice a sample off the peak: step onto it
            peak = np.clip(peak + (ac[rows, peak + 1] > mid) - (ac[rows, peak - 1] > mid), lo, hi)
        left, mid, right = ac[rows, peak - 1], ac[rows, peak], ac[rows, peak + 1]
        curvature = left - 2.0 * mid + right
        offset = np.where(curvature < 0, 0.5 * (left - right) / np.where(curvature < 0, curvature, -1.0), 0.0)
        lag = peak + np.clip(offset, -0.5, 0.5)
        f0 = 12.0 * np.log2(self.spec.sample_rate / lag / 55.0)
        voicing = np.clip(mid, 0.0, 1.0)
        if self.spec.pitch_peaks_only:
            voicing[~candidate.any(axis=1)] = 0.0
        return voicing, f0

    def frame_range(self, start_sample: int, end_sample: int) -> tuple[int, int]:
        """Frames lying wholly inside samples ``[start_sample, end_sample)``, clipped to the audio held."""
        hop, length = self.spec.hop_length, self.spec.frame_length
        first = max(-(-start_sample // hop), self.n_frames - self.frames.capacity, 0)
        last = min((end_sample - length) // hop + 1, self.n_frames)
        return first, max(first, last)

    def window_frames(self, start_sample: int, end_sample: int) -> np.ndarray:
        """The frames inside a window of the stream, shape ``(n, n_frame_columns)``."""
        return self.frames_between(*self.frame_range(start_sample, end_sample))


def functionals(frames: np.ndarray, spec: FeatureSpec = DEFAULT_SPEC) -> np.ndarray:
    """Summarise frames ``(n, n_frame_columns)`` into the window vector ``(spec.dim,)``.

    Pitch statistics use voiced frames only; an empty window or one with no voiced
    frame yields zeros for the missing parts.
    """
    out = np.zeros(spec.dim, dtype=np.float64)
    if len(frames) == 0:
        return out
    n_general = frames.shape[1] - 1
    out[:n_general * len(spec.stat_names)] = _stats(frames[:, :-1], spec).T.ravel()
    voiced = frames[frames[:, -2] >= spec.voicing_threshold, -1:]
    if len(voiced):
        out[n_general * len(spec.stat_names):-1] = _stats(voiced, spec).ravel()
    out[-1] = len(voiced) / len(frames)
    return out


def _stats(x: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """Rows: mean, std, then the spec's percentiles; columns follow ``x``'s columns.

    The same operations as ``x.mean``, ``x.std`` and numpy's default (linear) percentile,
    without their per-call overhead (this runs at every partial), so the results are equal bit for bit.
    """
    n = len(x)
    below, above, gamma = _percentile_points(n, spec.percentiles)
    out = np.empty((2 + len(below), x.shape[1]))
    mean = np.divide(np.add.reduce(x, axis=0), n, out=out[0])
    deviation = x - mean
    np.sqrt(np.divide(np.add.reduce(np.multiply(deviation, deviation, out=deviation), axis=0), n), out=out[1])
    ordered = np.sort(x, axis=0)
    low, high = ordered[below], ordered[above]
    step = high - low
    out[2:] = np.where(gamma >= 0.5, high - step * (1 - gamma), low + step * gamma)
    return out


@lru_cache(maxsize=1024)
def _percentile_points(n: int, percentiles: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows below and above each percentile of ``n`` sorted values, and the weight between them (numpy's formula)."""
    position = (n - 1) * (np.asarray(percentiles, dtype=np.float64) / 100)
    below = np.floor(position).astype(np.intp)
    return below, np.minimum(below + 1, n - 1), (position - below)[:, None]

