"""Evaluate a model by replaying clips through the same pipeline as `ser replay`."""

from __future__ import annotations

import random
import zlib
from collections import defaultdict
from pathlib import Path

import numpy as np

from realtime.channel import BandPass, through
from realtime.pipeline import Pipeline
from realtime.scorer import Scorer
from realtime.sources import DEFAULT_BLOCK, FileSource, SourceError
from ser_train.corpora import Clip
from ser_train.dataset import played
from ser_train.metrics import by_session_position, clip_probabilities, emotion_report, gender_accuracy
from ser_train.noise import Noise, Room, speaker_levels
from ser_train.progress import progress_bar
from ser_train.sessions import GENDERS


def clip_probs(pipeline: Pipeline, path: Path, gain_db: float = 0.0, noise: Noise | None = None,
               line: BandPass | None = None, room: Room | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """Stream one clip (heard in ``room``, ``gain_db`` louder, over ``noise``, through ``line``); return
    duration-weighted emotion and gender probabilities, None without speech."""
    source = FileSource(path, pipeline.sample_rate, block=DEFAULT_BLOCK, speed=0,
                        band_rate=pipeline.scorer.card.band_rate_hz)
    if line is not None:
        line.reset()
    blocks = through(line, played(source, gain_db, noise, DEFAULT_BLOCK, room))
    events = [e for block in blocks for e in pipeline.push(block)] + pipeline.flush()
    segments = [e for e in events if e.type == "segment"]
    if not segments:
        return None
    durations = np.array([e.end - e.start for e in segments], dtype=np.float64)
    emotion = np.array([list(e.emotion_probs.values()) for e in segments])
    gender = np.array([[e.gender_probs.get(g, np.nan) for g in GENDERS] for e in segments])
    _, (clip,) = clip_probabilities(np.hstack((emotion, gender)), np.zeros(len(segments), dtype=int), durations)
    return clip[:emotion.shape[1]], clip[emotion.shape[1]:]


def session_order(clips: list[Clip], seed: int) -> list[list[Clip]]:
    """Clips grouped by speaker (sorted), each speaker's clips in a seeded random order."""
    by_speaker: dict[str, list[Clip]] = defaultdict(list)
    for clip in clips:
        by_speaker[clip.speaker].append(clip)
    rng = random.Random(seed)
    sessions = []
    for speaker in sorted(by_speaker):
        session = sorted(by_speaker[speaker], key=lambda c: str(c.path))
        rng.shuffle(session)
        sessions.append(session)
    return sessions


def evaluate(scorer: Scorer, clips: list[Clip], adapt: bool, seed: int = 0, progress: bool = True,
             gain_db: float = 0.0, noise: tuple[float, float] | None = None,
             band_hz: tuple[float, float] | None = None, reverb_s: float | None = None,
             drr_db: float = 0.0) -> dict:
    """Replay every clip through the pipeline and score the clip-level decisions.

    With ``adapt`` each speaker is one session (state reset between speakers);
    without it the state is reset before every clip. ``gain_db`` plays every clip
    louder (or quieter), clipped at full scale; ``noise`` = (SNR dB, colour exponent)
    mixes in background noise that far below the speaker's median speech level; ``band_hz`` then passes
    the audio through that band, as a telephone line would (before the model's own band, if it has one);
    ``reverb_s`` first plays each clip in a reverberant :class:`Room` with that RT60 and ``drr_db`` direct-to-reverberant
    ratio (its own seeded echo).
    Clips whose label the model lacks are skipped and counted; a clip with no detected speech counts as an error
    (``no_speech``), and so does one that cannot be decoded (``unreadable``; ``unreadable_files`` says why). A model without a gender head
    has no gender accuracy (None). A ValueError says so when no clip's label is one of the model's.
    """
    labels = scorer.card.labels
    usable = [c for c in clips if c.label in labels]
    if not usable:
        raise ValueError(f"none of the clips' labels ({', '.join(sorted({c.label for c in clips}))}) is one of the "
                         f"model's ({', '.join(labels)}), so there is nothing to score")
    shared = [label for label in labels if label in {c.label for c in usable}]
    shared_index = [labels.index(label) for label in shared]
    pipeline = Pipeline(scorer, adapt=True)
    levels = speaker_levels(usable) if noise else {}
    line = BandPass(*band_hz, pipeline.sample_rate) if band_hz else None
    truth, emotion_rows, gender_truth, gender_rows, failures, places = [], [], [], [], [], []
    with progress_bar("evaluate", enabled=progress) as bar:
        task = bar.add_task("evaluate", total=len(usable))
        for session in session_order(usable, seed):
            pipeline.reset_session()
            for place, clip in enumerate(session, start=1):
                places.append(place)
                if not adapt:
                    pipeline.reset_session()
                pipeline.reset_stream()
                failure = None
                try:
                    result = clip_probs(pipeline, clip.path, gain_db, _background(clip, noise, levels, seed), line,
                                        _room(clip, reverb_s, drr_db, seed))
                except SourceError as exc:
                    failure, result = str(exc), None
                failures.append(failure)
                truth.append(shared.index(clip.label))
                gender_truth.append(GENDERS.index(clip.gender) if clip.gender in GENDERS else -1)
                emotion_rows.append(np.full(len(shared), np.nan) if result is None else result[0][shared_index])
                gender_rows.append(np.full(len(GENDERS), np.nan) if result is None else result[1])
                bar.advance(task)
    truth, probs, genders = np.array(truth), np.array(emotion_rows).reshape(-1, len(shared)), np.array(gender_truth)
    unreadable = [failure for failure in failures if failure is not None]
    undecoded = np.array([failure is not None for failure in failures], dtype=bool)
    report = emotion_report(truth, probs, tuple(shared), undecoded)
    if adapt:
        report["by_session_position"] = by_session_position(truth, probs, np.array(places), tuple(shared), undecoded)
    gender_rows = np.array(gender_rows).reshape(-1, 2)
    report.update({"skipped": len(clips) - len(usable), "unreadable": len(unreadable), "unreadable_files": unreadable,
                   "gender_accuracy": gender_accuracy(genders, gender_rows) if scorer.card.gender_trained else None,
                   "gender_clips": int(np.sum(genders >= 0)),
                   "adapt": adapt, "seed": seed, "gain_db": gain_db,
                   "noise": None if noise is None else {"snr_db": noise[0], "exponent": noise[1]},
                   "band_hz": list(band_hz) if band_hz else None, "reverb_s": reverb_s,
                   "drr_db": drr_db if reverb_s is not None else None,
                   "model": scorer.card.name})
    return report


def _background(clip: Clip, noise: tuple[float, float] | None, levels: dict[str, float], seed: int) -> Noise | None:
    """The clip's noise (its own seeded sample), set against its speaker's level."""
    if noise is None or clip.speaker not in levels:
        return None
    return Noise(noise[0], noise[1], levels[clip.speaker], zlib.crc32(f"{seed}:{clip.path.name}".encode()))


def _room(clip: Clip, reverb_s: float | None, drr_db: float, seed: int) -> Room | None:
    """The clip's reverberant room (its own seeded impulse response), if any."""
    return None if reverb_s is None else Room(reverb_s, zlib.crc32(f"{seed}:room:{clip.path.name}".encode()), drr_db)
