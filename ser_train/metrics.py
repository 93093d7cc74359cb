"""Clip-level decisions and the figures we publish (accuracy, UAR, per-class, confusion, ECE)."""

from __future__ import annotations

import numpy as np

ECE_BINS = 10


def clip_probabilities(probs: np.ndarray, clip: np.ndarray, duration_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Duration-weighted mean of window probabilities per clip; returns ``(clip_ids, probs)``."""
    ids, inverse = np.unique(clip, return_inverse=True)
    sums = np.zeros((len(ids), probs.shape[1]))
    np.add.at(sums, inverse, probs * duration_s[:, None])
    weights = np.bincount(inverse, weights=duration_s, minlength=len(ids))
    return ids, sums / np.maximum(weights, 1e-12)[:, None]


def expected_calibration_error(probs: np.ndarray, truth: np.ndarray) -> float:
    """Top-label ECE over equal-width confidence bins."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == truth
    bins = np.minimum((confidence * ECE_BINS).astype(int), ECE_BINS - 1)
    ece = 0.0
    for b in range(ECE_BINS):
        mask = bins == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(ece)


def emotion_report(truth: np.ndarray, probs: np.ndarray, labels: tuple[str, ...],
                   unreadable: np.ndarray | None = None) -> dict:
    """Accuracy, UAR, per-class precision/recall/F1, confusion (rows = truth) and ECE.

    A row of ``probs`` that is all NaN (no speech detected) counts as an error, and in ``no_speech`` unless
    ``unreadable`` marks it (a file that could not be decoded: an error counted apart).
    """
    missing = np.isnan(probs).any(axis=1)
    pred = np.where(missing, -1, np.nan_to_num(probs, nan=0.0).argmax(axis=1))
    k = len(labels)
    confusion = np.zeros((k, k), dtype=int)
    for t, p in zip(truth[~missing], pred[~missing]):
        confusion[t, p] += 1
    per_class, recalls = {}, []
    for i, label in enumerate(labels):
        support = int((truth == i).sum())
        tp = int(confusion[i, i])
        predicted = int(confusion[:, i].sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else None     # JSON null: no clip of this class
        f1 = f1_score(precision, recall) if support else 0.0
        per_class[label] = {"precision": round(precision, 4), "recall": None if recall is None else round(recall, 4),
                            "f1": round(f1, 4),
                            "support": support}
        if support:
            recalls.append(recall)
    ok = ~missing
    silent = missing if unreadable is None else missing & ~unreadable
    return {"n": int(len(truth)), "no_speech": int(silent.sum()),
            "accuracy": round(float(np.mean(pred == truth)), 4), "uar": round(float(np.mean(recalls)), 4),
            "ece": round(expected_calibration_error(probs[ok], truth[ok]), 4) if ok.any() else None,
            "per_class": per_class, "confusion": confusion.tolist(), "labels": list(labels)}


SESSION_POSITIONS = ((1, 5), (6, 15), (16, 30), (31, None))  # spans of a clip's 1-based place in its session


def by_session_position(truth: np.ndarray, probs: np.ndarray, positions: np.ndarray,
                        labels: tuple[str, ...], unreadable: np.ndarray | None = None) -> list[dict]:
    """:func:`emotion_report` of the clips at each span of places in their speaker's session (adapted
    replays): how the figures grow as the session's statistics fill in. Empty spans are left out."""
    reports = []
    for first, last in SESSION_POSITIONS:
        rows = (positions >= first) & (positions <= (np.inf if last is None else last))
        if rows.any():
            reports.append({"positions": f"{first}+" if last is None else f"{first}-{last}",
                            **emotion_report(truth[rows], probs[rows], labels,
                                             None if unreadable is None else unreadable[rows])})
    return reports


def f1_score(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def pooled_f1(pool: dict) -> list[float]:
    """Per-class F1 of a :func:`pooled` report, in label order: precision from the summed confusion, recall
    over every clip of the class (a clip without speech, which the confusion leaves out, is a miss)."""
    confusion = np.array(pool["confusion"])
    precision = np.diag(confusion) / np.maximum(confusion.sum(axis=0), 1)
    return [f1_score(float(p), pool["per_class_recall"][label]) for p, label in zip(precision, pool["labels"])]


def gender_accuracy(truth: np.ndarray, probs: np.ndarray) -> float | None:
    """Accuracy over clips whose gender is known (truth >= 0); a clip without speech (NaN row) is an error."""
    known = truth >= 0
    right = ~np.isnan(probs[known]).any(axis=1) & (np.nan_to_num(probs[known]).argmax(axis=1) == truth[known])
    return round(float(right.mean()), 4) if known.any() else None


def pooled(reports: list[dict]) -> dict:
    """Pool fold reports into clip-level figures over all folds (confusions summed).

    Each class's recall is over all its clips, so a clip without speech stays an error here too.
    """
    labels = reports[0]["labels"]
    confusion = np.sum([r["confusion"] for r in reports], axis=0)
    support = np.array([sum(r["per_class"][label]["support"] for r in reports) for label in labels])
    n = sum(r["n"] for r in reports)
    recall = np.diag(confusion) / np.maximum(support, 1)
    gender = [(r["gender_accuracy"], r["gender_clips"]) for r in reports if r.get("gender_accuracy") is not None]
    return {"n": n, "no_speech": sum(r["no_speech"] for r in reports),
            "accuracy": round(float(np.trace(confusion) / n), 4), "uar": round(float(recall[support > 0].mean()), 4),
            "per_class_recall": dict(zip(labels, recall.round(4).tolist())),
            "gender_accuracy": round(sum(a * w for a, w in gender) / sum(w for _, w in gender), 4) if gender else None,
            "ece_mean_over_folds": round(float(np.mean([r["ece"] for r in reports if r["ece"] is not None])), 4),
            "confusion": confusion.tolist(), "labels": labels,
            "fold_uar": [r["uar"] for r in reports]}


def pooled_by_position(folds: list[list[dict]]) -> list[dict]:
    """Pool each fold's :func:`by_session_position` reports span by span: clips, no speech, accuracy, UAR."""
    names = dict.fromkeys(span["positions"] for fold in folds for span in fold)
    pools = {name: pooled([span for fold in folds for span in fold if span["positions"] == name]) for name in names}
    return [{"positions": name, **{key: pool[key] for key in ("n", "no_speech", "accuracy", "uar")}}
            for name, pool in pools.items()]
