"""Evaluate a model by replaying clips through the same pipeline as `ser replay`."""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

import numpy as np

from realtime.pipeline import Pipeline
from realtime.scorer import Scorer
from realtime.sources import DEFAULT_BLOCK, FileSource, SourceError
from ser_train.corpora import Clip
from ser_train.dataset import at_level
from ser_train.metrics import emotion_report, gender_accuracy
from ser_train.progress import progress_bar
from ser_train.sessions import GENDERS


def clip_probs(pipeline: Pipeline, path: Path, gain_db: float = 0.0) -> tuple[np.ndarray, np.ndarray] | None:
    """Stream one clip (``gain_db`` louder); return duration-weighted emotion and gender probabilities,
    None without speech."""
    source = FileSource(path, pipeline.sample_rate, block=DEFAULT_BLOCK, speed=0)
    events = [e for chunk in source for e in pipeline.push(at_level(chunk.samples, gain_db))] + pipeline.flush()
    segments = [e for e in events if e.type == "segment"]
    if not segments:
        return None
    weights = np.array([e.end - e.start for e in segments], dtype=np.float64)
    emotion = np.array([list(e.emotion_probs.values()) for e in segments])
    gender = np.array([[e.gender_probs.get(g, np.nan) for g in GENDERS] for e in segments])
    return weights @ emotion / weights.sum(), weights @ gender / weights.sum()


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
             gain_db: float = 0.0) -> dict:
    """Replay every clip through the pipeline and score the clip-level decisions.

    With ``adapt`` each speaker is one session (state reset between speakers);
    without it the state is reset before every clip. ``gain_db`` plays every clip
    louder (or quieter), clipped at full scale. Clips whose label the model
    lacks are skipped and counted; a clip with no detected speech counts as an error.
    """
    labels = scorer.card.labels
    usable = [c for c in clips if c.label in labels]
    shared = [label for label in labels if label in {c.label for c in usable}]
    shared_index = [labels.index(label) for label in shared]
    pipeline = Pipeline(scorer, adapt=True)
    truth, emotion_rows, gender_truth, gender_rows, unreadable = [], [], [], [], []
    with progress_bar("evaluate", enabled=progress) as bar:
        task = bar.add_task("evaluate", total=len(usable))
        for session in session_order(usable, seed):
            pipeline.reset_session()
            for clip in session:
                if not adapt:
                    pipeline.reset_session()
                pipeline.reset_stream()
                try:
                    result = clip_probs(pipeline, clip.path, gain_db)
                except SourceError as exc:
                    unreadable.append(str(exc))
                    result = None
                truth.append(shared.index(clip.label))
                gender_truth.append(GENDERS.index(clip.gender) if clip.gender in GENDERS else -1)
                emotion_rows.append(np.full(len(shared), np.nan) if result is None else result[0][shared_index])
                gender_rows.append(np.full(len(GENDERS), np.nan) if result is None else result[1])
                bar.advance(task)
    report = emotion_report(np.array(truth), np.array(emotion_rows).reshape(-1, len(shared)), tuple(shared))
    report.update({"skipped": len(clips) - len(usable), "unreadable": len(unreadable),
                   "gender_accuracy": gender_accuracy(np.array(gender_truth), np.array(gender_rows).reshape(-1, 2)),
                   "adapt": adapt, "seed": seed, "gain_db": gain_db, "model": scorer.card.name})
    return report
