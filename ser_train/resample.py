"""A copy of a corpus at another sample rate, such as telephone-band (8 kHz) training data.

Each audio file is decoded as the runtime decodes it (mono, resampled with soxr) and
written as 16-bit PCM under the same relative path and name (WAV stays WAV, FLAC stays
FLAC); every other file (speaker CSVs, READMEs) is copied as it is, so the corpus
loaders read the copy like the original. Linked folders are followed as the corpus scan
follows them, and the copy is built beside the target and renamed to it once complete.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from realtime.sources import MAX_RATE_HZ, MIN_RATE_HZ, FileSource, SourceError, first_line, sound_path
from ser_train.corpora import AUDIO_SUFFIXES, audio_files, walk_files
from ser_train.progress import progress_bar

FLAC_MAX_RATE_HZ = 655350   # the highest rate libsndfile writes as FLAC


def _write(out: Path, samples: np.ndarray, rate: int, shown: Path) -> None:
    """Write 16-bit audio; libsndfile's failure (a full disk, say) is an OSError naming the file as the user
    will find it (``shown``)."""
    try:
        sf.write(sound_path(out), samples, rate, subtype="PCM_16")
    except sf.LibsndfileError as exc:
        raise OSError(f"cannot write {shown}: {first_line(exc)}") from None


def resample_corpus(source: Path, target: Path, rate: int) -> tuple[int, list[tuple[Path, str]]]:
    """Write ``source``'s tree to ``target`` with every audio file at ``rate``; return (written, failures).

    The tree is built in a hidden folder beside ``target`` and renamed to it at the end, so an error or
    Ctrl-C leaves no partial copy; a file that cannot be decoded (or a link to nothing) is a failure, not an abort.
    """
    if not MIN_RATE_HZ <= rate <= MAX_RATE_HZ:
        raise ValueError(f"--rate must be {MIN_RATE_HZ}-{MAX_RATE_HZ} Hz, got {rate}")
    if not source.is_dir():
        raise ValueError(f"{source}: not a folder")
    if target.resolve() == source.resolve() or target.resolve().is_relative_to(source.resolve()):
        raise ValueError(f"{target}: must lie outside {source}")
    if target.is_dir() and any(target.iterdir()):
        raise ValueError(f"{target} already holds files; give a new or empty folder")
    if os.path.ismount(target):
        raise ValueError(f"{target} is a mount point; give a new folder inside it (the copy is built beside it)")
    audio, broken = audio_files(source)
    if not audio:
        raise ValueError(f"no .wav or .flac files under {source}")
    if rate > FLAC_MAX_RATE_HZ and any(path.suffix.lower() == ".flac" for path in audio):
        raise ValueError(f"--rate {rate} Hz is above FLAC's limit of {FLAC_MAX_RATE_HZ} Hz, and the .flac files "
                         f"under {source} are written as FLAC; give a lower --rate")
    others = [path for path in walk_files(source) if path.suffix.lower() not in AUDIO_SUFFIXES and path.is_file()]
    final = target.resolve()
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    except OSError as exc:
        raise ValueError(f"{target}: cannot make a folder beside it, where the copy is built "
                         f"({exc.strerror or exc})") from None
    written, failures = 0, [(path, f"{path}: a link to nothing") for path in broken]
    try:
        with progress_bar("resampling") as progress:
            files = sorted(audio + others)
            task = progress.add_task("files", total=len(files))
            for path in files:
                out = building / path.relative_to(source)
                out.parent.mkdir(parents=True, exist_ok=True)
                if path.suffix.lower() not in AUDIO_SUFFIXES:
                    shutil.copy2(path, out)
                else:
                    try:
                        samples = np.concatenate([chunk.samples for chunk in FileSource(path, rate, speed=0)])
                    except SourceError as exc:
                        failures.append((path, str(exc)))
                    else:
                        _write(out, np.clip(samples, -1.0, 1.0), rate, target / path.relative_to(source))
                        written += 1
                progress.advance(task)
        if final.is_dir():
            final.rmdir()   # the empty folder given
        building.rename(final)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return written, sorted(failures)
