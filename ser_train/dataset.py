"""Window feature vectors for every clip, computed by the serving path and cached on disk."""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from realtime.features import FeatureSpec
from realtime.pipeline import WindowFeaturizer
from realtime.sources import FileSource, SourceError, open_sound_file
from realtime.vad import VadConfig
from ser_train.corpora import Clip
from ser_train.noise import Noise, Room
from ser_train.progress import progress_bar

log = logging.getLogger(__name__)
DEFAULT_CACHE = Path(os.environ.get("SER_CACHE", Path.home() / ".cache" / "ser-train"))
EXTRACT_BLOCK = 16000         # samples per push; features do not depend on it
CACHE_LAYOUT = 2              # 2: frames are cached beside the vectors


@dataclass(frozen=True)
class ClipWindows:
    """The segment windows found in one clip: ``vectors`` ``(n, dim)``, ``durations_s`` ``(n,)``
    and each window's frames (float32, ``(n_frames, n_frame_columns)``).

    ``factor`` != 1 marks a voice-perturbed copy, ``gain_db`` != 0 one played at another level,
    ``noise`` one heard over background noise and ``room`` one heard in a reverberant room (see :func:`clip_windows`).
    """

    clip: Clip
    vectors: np.ndarray
    durations_s: np.ndarray
    frames: tuple[np.ndarray, ...]
    factor: float = 1.0
    gain_db: float = 0.0
    noise: Noise | None = None
    room: Room | None = None


Extracted = tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...]]
Band = tuple[float, float] | None


def at_level(samples: np.ndarray, gain_db: float) -> np.ndarray:
    """``samples`` played ``gain_db`` louder, clipped at full scale as a recording would be."""
    if gain_db == 0.0:
        return samples
    return np.clip(samples * np.float32(10.0 ** (gain_db / 20)), -1.0, 1.0)


def played(source: FileSource, gain_db: float, noise: Noise | None, block: int,
           room: Room | None = None, rate: int | None = None) -> Iterator[np.ndarray]:
    """``source``'s audio heard in ``room``, ``gain_db`` louder, with ``noise`` mixed in over the whole clip,
    in blocks of ``block``. ``rate`` is the rate the samples are heard at, when not the source's (a voice copy)."""
    if noise is None and room is None:
        yield from (at_level(chunk.samples, gain_db) for chunk in source)
        return
    samples = np.concatenate([chunk.samples for chunk in source])
    if room is not None:
        samples = room.apply(samples, rate or source.sample_rate)
    samples = at_level(samples, gain_db)
    if noise is not None:
        samples = noise.mix(samples, gain_db)
    yield from (samples[start:start + block] for start in range(0, len(samples), block))


def clip_windows(path: Path, spec: FeatureSpec, vad: VadConfig, factor: float = 1.0,
                 gain_db: float = 0.0, noise: Noise | None = None, band_hz: Band = None,
                 room: Room | None = None) -> Extracted:
    """Replay one file through the serving windower; return segment vectors, durations and frames.

    With ``factor`` != 1 the file is decoded at ``factor * sample_rate`` and played at
    ``sample_rate``: pitch and formants scale by ``1 / factor`` (a new voice for training).
    With ``room`` that voice is heard in a reverberant room, with ``gain_db`` != 0 at another level (see
    :func:`at_level`), with ``noise`` over background noise; with ``band_hz`` all of it is heard through that
    pass band, as the model will hear.
    """
    featurizer = WindowFeaturizer(spec, vad, keep_frames=True, band_hz=band_hz)
    vectors, durations, frames = [], [], []
    source = FileSource(path, int(round(spec.sample_rate * factor)), block=EXTRACT_BLOCK, speed=0)
    heard = played(source, gain_db, noise, EXTRACT_BLOCK, room, spec.sample_rate)
    batches = [featurizer.push(block) for block in heard] + [featurizer.flush()]
    for window in itertools.chain.from_iterable(batches):
        if window.event.kind == "segment":
            vectors.append(window.vector)
            durations.append((window.event.end - window.event.start) / spec.sample_rate)
            frames.append(window.frames.astype(np.float32))
    return (np.array(vectors, dtype=np.float64).reshape(-1, spec.dim), np.array(durations, dtype=np.float64),
            tuple(frames))


def rate_range(clips: list[Clip]) -> tuple[int, int] | None:
    """The lowest and highest sample rate among the clips' files (unreadable ones are left out), or None."""
    rates = set()
    for clip in clips:
        try:
            with open_sound_file(clip.path) as handle:
                rates.add(handle.samplerate)
        except SourceError:
            pass   # extraction logs and counts it
    return (min(rates), max(rates)) if rates else None


def _windowing(vad: VadConfig) -> dict:
    """The VAD settings a cache key holds: a setting added since is left out at its old behaviour, so the
    entries cached before it existed stay valid."""
    return {key: value for key, value in asdict(vad).items() if key != "webrtc_hears_silence" or value}


def _cache_key(path: Path, spec: FeatureSpec, vad: VadConfig, factor: float, gain_db: float,
               noise: Noise | None, band_hz: Band, room: Room | None) -> str:
    stat = path.stat()
    copy = [factor] if gain_db == 0.0 else [factor, gain_db]   # entries cached before gains existed stay valid
    if noise is not None:
        copy.append(asdict(noise))
    if band_hz is not None:
        copy.append({"band_hz": list(band_hz)})
    if room is not None:
        copy.append({"room": asdict(room), "pre_delay_s": Room.PRE_DELAY_S})
    text = json.dumps([str(path.resolve()), stat.st_size, stat.st_mtime_ns, spec.hash(), _windowing(vad), *copy,
                       CACHE_LAYOUT], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _cached_windows(args: tuple[Path, FeatureSpec, VadConfig, float, float, Noise | None, Band, Room | None,
                                Path | None]) -> Extracted | str:
    path, spec, vad, factor, gain_db, noise, band_hz, room, cache_dir = args
    key = _cache_key(path, spec, vad, factor, gain_db, noise, band_hz, room)
    target = cache_dir / spec.hash() / f"{key}.npz" if cache_dir else None
    if target is not None and target.exists():
        with np.load(target) as data:
            frames = np.split(data["frames"], np.cumsum(data["frame_counts"])[:-1])
            return data["vectors"], data["durations"], tuple(frames) if len(data["durations"]) else ()
    try:
        vectors, durations, frames = clip_windows(path, spec, vad, factor, gain_db, noise, band_hz, room)
    except SourceError as exc:
        return str(exc)
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp.npz")
        columns = len(spec.frame_names)
        np.savez(tmp, vectors=vectors, durations=durations, frame_counts=np.array([len(f) for f in frames], dtype=int),
                 frames=np.concatenate(frames) if frames else np.zeros((0, columns), np.float32))
        tmp.replace(target)
    return vectors, durations, frames


def worker_context() -> multiprocessing.context.BaseContext:
    """How extraction starts its workers: from a fork server where the platform has one (Python 3.14's
    default on Linux), since forking this process while the progress bar's thread runs can deadlock."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context()
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])   # the server imports this once; each worker starts loaded
    return context


def extract(clips: list[Clip], spec: FeatureSpec, vad: VadConfig = VadConfig(), factors: tuple[float, ...] = (1.0,),
            cache_dir: Path | None = DEFAULT_CACHE, workers: int | None = None,
            gain_db: Callable[[Clip, float], float] = lambda clip, factor: 0.0,
            noise: Callable[[Clip, float], Noise | None] = lambda clip, factor: None,
            band_hz: Band = None, room: Callable[[Clip, float], Room | None] = lambda clip, factor: None
            ) -> list[ClipWindows]:
    """Window vectors for every clip and voice factor, extracted in parallel with a progress bar.

    Results come factor by factor, each in the clips' order; ``gain_db(clip, factor)`` is
    the level each copy is played at, ``noise(clip, factor)`` its background noise, ``room(clip, factor)``
    the room it is heard in and ``band_hz``
    the pass band every copy is heard through (see :func:`clip_windows`). Clips
    that cannot be decoded are logged and returned with no windows, so they are counted, not dropped.
    """
    workers = workers or max(1, min(len(os.sched_getaffinity(0)), 8))
    copies = [(clip, factor, gain_db(clip, factor), noise(clip, factor), room(clip, factor))
              for factor in factors for clip in clips]
    jobs = [(clip.path, spec, vad, factor, gain, background, band_hz, echo, cache_dir)
            for clip, factor, gain, background, echo in copies]
    results: list[ClipWindows] = []
    unreadable: set[Path] = set()
    with progress_bar("features") as progress, ProcessPoolExecutor(workers, worker_context()) as pool:
        task = progress.add_task("features", total=len(jobs))
        for (clip, factor, gain, background, echo), result in zip(copies, pool.map(_cached_windows, jobs, chunksize=8)):
            if isinstance(result, str):
                if clip.path not in unreadable:        # once, not once per voice copy
                    log.warning("skipped %s", result)   # the message starts with the path
                    unreadable.add(clip.path)
                result = (np.zeros((0, spec.dim)), np.zeros(0), ())
            results.append(ClipWindows(clip, *result, factor=factor, gain_db=gain, noise=background, room=echo))
            progress.advance(task)
    return results
