"""The benchmark stream: real speech clips joined by pauses, as one long mono recording."""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from benchmarks.arguments import refuse
from realtime.cli import demo_path
from realtime.sources import SourceError, first_line, open_sound_file

log = logging.getLogger(__name__)

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"   # ../shared/data from the repository

AUDIO_SUFFIXES = (".flac", ".wav", ".ogg", ".aiff", ".aif")   # what `ser replay` plays
PAUSE_S = (0.5, 2.0)          # pause lengths between clips, uniform
PAUSE_RMS = 1e-4              # -80 dBFS of white noise: a quiet room, never digital silence


@dataclass(frozen=True)
class Stream:
    """``samples`` float32 mono at ``rate``; ``clips`` holds ``(start, end, path)`` in samples."""

    samples: np.ndarray
    rate: int
    clips: tuple[tuple[int, int, Path], ...]
    origin: str

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.rate

    def clip_at(self, sample: int) -> Path | None:
        """The clip covering ``sample``, or None inside a pause."""
        return next((path for start, end, path in self.clips if start <= sample < end), None)


def audio_files(folder: Path) -> list[Path]:
    """Every file under ``folder`` that `ser replay` plays (wav, flac, ogg, aiff), sorted."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())


def read_mono(path: Path, rate: int) -> np.ndarray:
    """A whole file as float32 mono at ``rate`` (downmixed, resampled with soxr); a file that will not decode is a
    :class:`SourceError` naming it."""
    with open_sound_file(path) as handle:
        try:
            audio = handle.read(dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise SourceError(f"{path}: decoding failed ({first_line(exc)})") from None
        native = handle.samplerate
    mono = audio.mean(axis=1)
    return soxr.resample(mono, native, rate).astype(np.float32) if native != rate else mono


def build_stream(files: list[Path], minutes: float, rate: int, seed: int = 0, origin: str = "") -> Stream:
    """Clips in a seeded random order, each followed by a pause, until ``minutes`` of audio.

    Files are reused in a new order when they run out, so a single file also works.
    """
    if not files:
        raise ValueError("no audio files to build the benchmark stream from")
    rng = np.random.default_rng(seed)
    target = max(1, int(minutes * 60 * rate))   # at least one clip
    parts: list[np.ndarray] = []
    clips: list[tuple[int, int, Path]] = []
    position = 0
    while position < target:
        for index in rng.permutation(len(files)):
            clip = read_mono(files[index], rate)
            pause = (PAUSE_RMS * rng.standard_normal(int(rng.uniform(*PAUSE_S) * rate))).astype(np.float32)
            parts += [clip, pause]
            clips.append((position, position + len(clip), files[index]))
            position += len(clip) + len(pause)
            if position >= target:
                break
    log.info("benchmark stream: %d clips, %.1f s", len(clips), position / rate)
    return Stream(np.concatenate(parts), rate, tuple(clips), origin)


def load_stream(data: Path | None, minutes: float, rate: int, seed: int = 0) -> Stream:
    """The benchmark stream from ``data``; without it, from ``DEFAULT_DATA`` or, in a clone without that,
    the bundled demo recording. A ``data`` folder without audio is an error, not a silent substitute."""
    folder = DEFAULT_DATA if data is None else data
    files = audio_files(folder) if folder.is_dir() else []
    if files:
        return build_stream(files, minutes, rate, seed, origin=str(folder))
    if data is not None:
        raise ValueError(f"{data}: no {'/'.join(s.lstrip('.') for s in AUDIO_SUFFIXES)} files there")
    return build_stream([demo_path()], minutes, rate, seed, origin="bundled demo.flac")


def stream_or_usage_error(parser: argparse.ArgumentParser, data: Path | None, minutes: float, rate: int,
                          seed: int = 0) -> Stream:
    """:func:`load_stream` for a benchmark command: a ``--data`` folder without audio is its usage error, a file
    that will not decode one line naming it."""
    try:
        return load_stream(data, minutes, rate, seed)
    except ValueError as exc:
        refuse(parser, exc)
