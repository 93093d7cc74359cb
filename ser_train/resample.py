"""A copy of a corpus at another sample rate, such as telephone-band (8 kHz) training data.

Each audio file is decoded as the runtime decodes it (mono, resampled with soxr) and
written as 16-bit PCM under the same relative path and name (WAV stays WAV, FLAC stays
FLAC); every other file (speaker CSVs, READMEs) is copied as it is, so the corpus
loaders read the copy like the original.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import soundfile as sf

from realtime.sources import MAX_RATE_HZ, MIN_RATE_HZ, FileSource, SourceError
from ser_train.corpora import AUDIO_SUFFIXES
from ser_train.progress import progress_bar


def resample_corpus(source: Path, target: Path, rate: int) -> tuple[int, list[tuple[Path, str]]]:
    """Write ``source``'s tree to ``target`` with every audio file at ``rate``; return (written, failures)."""
    if not MIN_RATE_HZ <= rate <= MAX_RATE_HZ:
        raise ValueError(f"--rate must be {MIN_RATE_HZ}-{MAX_RATE_HZ} Hz, got {rate}")
    if not source.is_dir():
        raise ValueError(f"{source}: not a folder")
    if target.resolve() == source.resolve() or target.resolve().is_relative_to(source.resolve()):
        raise ValueError(f"{target}: must lie outside {source}")
    if target.is_dir() and any(target.iterdir()):
        raise ValueError(f"{target} already holds files; give a new or empty folder")
    files = sorted(p for p in source.rglob("*") if p.is_file())
    if not any(path.suffix.lower() in AUDIO_SUFFIXES for path in files):
        raise ValueError(f"no .wav or .flac files under {source}")
    written, failures = 0, []
    with progress_bar("resampling") as progress:
        task = progress.add_task("files", total=len(files))
        for path in files:
            out = target / path.relative_to(source)
            out.parent.mkdir(parents=True, exist_ok=True)
            if path.suffix.lower() not in AUDIO_SUFFIXES:
                shutil.copy2(path, out)
            else:
                try:
                    samples = np.concatenate([chunk.samples for chunk in FileSource(path, rate, speed=0)])
                except SourceError as exc:
                    failures.append((path, str(exc)))
                else:
                    sf.write(out, np.clip(samples, -1.0, 1.0), rate, subtype="PCM_16")
                    written += 1
            progress.advance(task)
    return written, failures
