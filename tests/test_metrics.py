"""Pooling fold reports gives the figures of one report over all their clips."""

import numpy as np

from ser_train.metrics import emotion_report, pooled

LABELS = ("neutral", "happy", "sad")


def test_pooled_folds_equal_one_report_over_all_clips_with_silent_clips_as_errors():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, len(LABELS), 60)
    probs = rng.dirichlet(np.ones(len(LABELS)), 60)
    probs[[3, 17, 40]] = np.nan  # clips without speech
    folds = [emotion_report(truth[rows], probs[rows], LABELS) for rows in (slice(0, 25), slice(25, 60))]
    for report in folds:
        report["gender_accuracy"] = None
    whole = emotion_report(truth, probs, LABELS)
    pool = pooled(folds)
    assert pool["no_speech"] == 3
    assert pool["uar"] == whole["uar"]
    assert pool["accuracy"] == whole["accuracy"]
    assert pool["per_class_recall"] == {label: whole["per_class"][label]["recall"] for label in LABELS}
