"""Audio sources: files (any rate, any channel count) and the microphone.

Both yield :class:`Chunk` blocks of float32 mono at the model rate and keep
counters of anything lost or repaired, so nothing is dropped silently.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

log = logging.getLogger(__name__)

DEFAULT_BLOCK = 1600          # samples per block: 100 ms at 16 kHz, as `ser live` asks of the microphone
READ_FRAMES = 65536           # file frames decoded at a time, independent of the block size
READ_SAMPLES = 8 * READ_FRAMES  # cap on samples per read, so a 1024-channel header cannot balloon a read
SALVAGE_FRAMES = 1024         # after a read fails, the frames before the fault are read again this many at a time
MIN_RATE_HZ = 4000            # file rates outside this range are refused (a corrupt header, not audio)
MAX_RATE_HZ = 768000
MIN_SPEED = 0.01              # a replay's slowest pace: a hundredth of real time
UNKNOWN_LENGTH = 0x7FFFFFFF   # WAV data lengths from here up are recorders' placeholders: the length was unknown


class SourceError(ValueError):
    """Audio that cannot be read or a device that cannot be opened; one-line message."""


@dataclass(frozen=True)
class Chunk:
    """A block of mono float32 samples starting at absolute sample ``start``."""

    samples: np.ndarray
    start: int


@dataclass
class SourceStats:
    """Counters shown in the dashboard, the summary and ``stats`` events."""

    blocks: int = 0
    dropped_blocks: int = 0
    overflows: int = 0
    nonfinite_samples: int = 0
    lost_s: float = 0.0       # audio lost (dropped, overflowed, left unread); within the run replaced by silence
    behind_s: float | None = None       # a live source's lag behind its device (see note_behind); None for
    max_behind_s: float | None = None   # files, and until a block is read

    def note_behind(self, seconds: float) -> None:
        """Record a block read ``seconds`` after its capture ended: the host's delay in handing it over
        (where the device gives timestamps) plus its wait in the source's queue."""
        self.behind_s = seconds
        self.max_behind_s = seconds if self.max_behind_s is None else max(self.max_behind_s, seconds)


def to_mono_float(block: np.ndarray, stats: SourceStats) -> np.ndarray:
    """Downmix ``(frames, channels)`` to mono float32, replacing NaN/inf samples with 0 (counted)."""
    if block.ndim == 2 and block.shape[1] == 1 and block.dtype == np.float32 and np.isfinite(block).all():
        return block[:, 0].copy()  # the microphone's case: nothing to downmix or repair
    bad = ~np.isfinite(block)
    if bad.any():
        stats.nonfinite_samples += int(bad.sum())
        block = np.where(bad, 0.0, block)
    mono = block.mean(axis=1, dtype=np.float64) if block.ndim == 2 else block
    return mono.astype(np.float32)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (libsndfile messages can span lines); of libsndfile's, only its
    reason: the path it prefixes is the one we were given as bytes, shown as ``b'...'``."""
    text = str(getattr(exc, "error_string", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def sound_path(path: Path) -> str | bytes:
    """``path`` as soundfile should be given it: bytes on POSIX, where soundfile would encode a str as
    strict UTF-8 and fail on a file name that is not."""
    return str(path) if sys.platform == "win32" else os.fsencode(path)


def open_sound_file(path: Path) -> sf.SoundFile:
    """Open an audio file for streaming, turning every failure into a :class:`SourceError`."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise SourceError(f"{path}: no such file") from None
    except OSError as exc:
        raise SourceError(f"{path}: cannot access ({exc.strerror})") from None
    if stat.S_ISDIR(info.st_mode):
        raise SourceError(f"{path}: is a directory, not an audio file")
    if not stat.S_ISREG(info.st_mode):
        raise SourceError(f"{path}: not a regular file")
    if not os.access(path, os.R_OK):
        raise SourceError(f"{path}: permission denied")
    if info.st_size == 0:
        raise SourceError(f"{path}: file is empty")
    try:
        handle = sf.SoundFile(sound_path(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise SourceError(f"{path}: not a readable audio file ({first_line(exc)})") from None
    problem = None
    if not MIN_RATE_HZ <= handle.samplerate <= MAX_RATE_HZ:
        problem = f"unsupported sample rate {handle.samplerate} Hz (need {MIN_RATE_HZ}-{MAX_RATE_HZ})"
    elif handle.frames == 0:
        problem = "no audio frames"
    if problem:
        handle.close()
        raise SourceError(f"{path}: {problem}")
    return handle


def overstated_length(handle: sf.SoundFile) -> bool:
    """Whether the file's header declares more audio than the file holds, in a format whose length libsndfile
    has already corrected to what is there (a WAV or AIFF cut short); read from libsndfile's log of the header."""
    log_text = handle.extra_info
    data = re.search(r"^data\s*:\s*(\d+) \(should be (\d+)\)", log_text, re.MULTILINE)
    return "> file length" in log_text or (data is not None and int(data[2]) < int(data[1]) < UNKNOWN_LENGTH)


def readable_frames(path: Path, channels: int, start: int) -> np.ndarray:
    """After a read from frame ``start`` failed, the frames from there that still decode, up to the fault.

    The file is opened afresh: a decoder that has lost sync cannot seek back."""
    pieces = [np.zeros((0, channels), dtype=np.float32)]
    try:
        with sf.SoundFile(sound_path(path)) as handle:
            handle.seek(start)
            while True:
                pieces.append(handle.read(SALVAGE_FRAMES, dtype="float32", always_2d=True))
                if len(pieces[-1]) < SALVAGE_FRAMES:
                    break
    except (sf.LibsndfileError, RuntimeError, OSError):
        pass
    return np.concatenate(pieces)


def narrows(native: int, band_rate: int | None) -> bool:
    """Whether audio recorded at ``native`` Hz passes through ``band_rate`` on its way to the model."""
    return band_rate is not None and band_rate < native


class Resampler:
    """Streaming soxr resampling from ``native`` to ``target`` Hz, through ``band_rate`` when the input is
    recorded at a higher rate: a model trained on narrowband audio (telephone, 8 kHz) then hears no band it never
    learned, and audio already at ``band_rate`` or below takes the same path as in training."""

    def __init__(self, native: int, target: int, band_rate: int | None = None) -> None:
        self.band_limited = narrows(native, band_rate)
        rates = [native, band_rate, target] if self.band_limited else [native, target]
        self._stages = [soxr.ResampleStream(a, b, 1, dtype="float32", quality="HQ")
                        for a, b in zip(rates, rates[1:]) if a != b]

    def __call__(self, samples: np.ndarray, last: bool = False) -> np.ndarray:
        for stage in self._stages:
            samples = stage.resample_chunk(samples, last=last)
        return samples


class FileSource:
    """Stream a file at ``sample_rate`` in blocks of ``block`` samples.

    Parameters
    ----------
    path : str or Path
    sample_rate : int
        Target rate; other rates are resampled with soxr.
    block : int
        Samples per yielded chunk (the last one may be shorter).
    speed : float
        1 paces to the wall clock, 4 runs four times faster, 0 as fast as possible.
    band_rate : int or None
        Pass wider audio through this rate first (see :class:`Resampler`).
    """

    def __init__(self, path: str | Path, sample_rate: int, block: int = DEFAULT_BLOCK, speed: float = 1.0,
                 band_rate: int | None = None) -> None:
        if block <= 0:
            raise SourceError(f"--chunk must be a positive number of samples, got {block}")
        if not (speed == 0 or MIN_SPEED <= speed < np.inf):
            raise SourceError(f"--speed must be 0 (as fast as possible) or at least {MIN_SPEED:g}, got {speed:g}")
        self.path = Path(path)
        self.sample_rate = sample_rate
        self.block = block
        self.speed = speed
        self.stats = SourceStats()
        with open_sound_file(self.path) as handle:
            self.native_rate = handle.samplerate
            self.channels = handle.channels
            self.duration_s = handle.frames / handle.samplerate
        self.band_rate = band_rate
        self.position = 0
        self._hurry = threading.Event()

    def stop_waiting(self) -> None:
        """Pace no more (a stop request): the block in hand goes out at once, from any thread or a signal handler."""
        self._hurry.set()

    def describe(self) -> str:
        band = f", heard through {self.band_rate} Hz" if narrows(self.native_rate, self.band_rate) else ""
        return f"{self.path.name} ({self.native_rate} Hz, {self.channels} ch, {self.duration_s:.1f} s{band})"

    def _decoded(self) -> Iterator[np.ndarray]:
        """Mono blocks at the target rate, independent of ``self.block``."""
        resampler = Resampler(self.native_rate, self.sample_rate, self.band_rate)
        frames = max(1, min(READ_FRAMES, READ_SAMPLES // self.channels))
        decoded = 0
        with open_sound_file(self.path) as handle:
            while True:
                try:
                    raw = handle.read(frames, dtype="float32", always_2d=True)
                except (sf.LibsndfileError, RuntimeError) as exc:  # what still decodes is delivered
                    rest = readable_frames(self.path, self.channels, decoded)
                    decoded += len(rest)
                    yield resampler(to_mono_float(rest, self.stats), last=True)
                    raise SourceError(f"{self.path}: decoding failed after {decoded / self.native_rate:.1f} s "
                                      f"({first_line(exc)})") from None
                decoded += len(raw)
                last = len(raw) < frames
                mono = to_mono_float(raw, self.stats)
                yield resampler(mono, last=last)
                if last:
                    break
            if decoded < handle.frames or overstated_length(handle):
                log.warning("%s: the file holds %.1f s, less than its header declares (truncated?)",
                            self.path.name, decoded / self.native_rate)

    def __iter__(self) -> Iterator[Chunk]:
        began = time.monotonic()
        pending: list[np.ndarray] = []   # decoded pieces not yet delivered, joined only once a block is full
        held = 0
        failure: SourceError | None = None
        try:
            for decoded in self._decoded():
                pending.append(decoded)
                held += len(decoded)
                if held >= self.block:
                    buffer = np.concatenate(pending)
                    whole = held - held % self.block
                    for start in range(0, whole, self.block):
                        yield self._emit(buffer[start:start + self.block], began)
                    pending, held = [buffer[whole:]], held - whole
        except SourceError as exc:  # deliver the partial block before reporting the failure
            failure = exc
        if held:
            yield self._emit(np.concatenate(pending), began)
        if failure is not None:
            raise failure

    def _emit(self, samples: np.ndarray, began: float) -> Chunk:
        chunk = Chunk(np.ascontiguousarray(samples), self.position)
        self.position += len(samples)
        self.stats.blocks += 1
        if self.speed > 0:
            delay = began + self.position / self.sample_rate / self.speed - time.monotonic()
            if delay > 0:
                self._hurry.wait(delay)
        return chunk
