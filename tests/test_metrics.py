"""Clip-level figures: a clip without speech is an error, and pooling folds keeps it one."""

import numpy as np
import pytest

from ser_train.metrics import (by_session_position, emotion_report, gender_accuracy, pooled, pooled_by_position,
                               pooled_f1)

LABELS = ("neutral", "happy", "sad")


def _report(truth, probs, gender_truth, gender_probs):
    report = emotion_report(truth, probs, LABELS)
    report.update(gender_accuracy=gender_accuracy(gender_truth, gender_probs),
                  gender_clips=int(np.sum(gender_truth >= 0)))
    return report


def test_a_clip_without_speech_is_a_gender_error_and_an_unknown_gender_is_left_out():
    probs = np.array([[0.9, 0.1], [np.nan, np.nan], [0.2, 0.8], [0.3, 0.7]])
    assert gender_accuracy(np.array([0, 0, 1, -1]), probs) == round(2 / 3, 4)
    assert gender_accuracy(np.array([-1, -1, -1, -1]), probs) is None


def test_pooled_folds_equal_one_report_over_all_clips_with_silent_clips_as_errors():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, len(LABELS), 60)
    probs = rng.dirichlet(np.ones(len(LABELS)), 60)
    gender_truth = rng.integers(-1, 2, 60)
    gender_probs = rng.dirichlet(np.ones(2), 60)
    silent = [3, 17, 40]  # clips without speech
    probs[silent] = np.nan
    gender_probs[silent] = np.nan
    folds = [_report(truth[rows], probs[rows], gender_truth[rows], gender_probs[rows])
             for rows in (slice(0, 25), slice(25, 60))]
    whole = _report(truth, probs, gender_truth, gender_probs)
    pool = pooled(folds)
    assert pool["no_speech"] == 3
    assert pool["uar"] == whole["uar"]
    assert pool["accuracy"] == whole["accuracy"]
    assert pool["per_class_recall"] == {label: whole["per_class"][label]["recall"] for label in LABELS}
    assert pooled_f1(pool) == pytest.approx([whole["per_class"][label]["f1"] for label in LABELS], abs=1e-3)  # the report's
    assert abs(pool["gender_accuracy"] - whole["gender_accuracy"]) < 1e-4  # fold figures are rounded to 1e-4


def test_figures_by_session_position_pool_over_folds_span_by_span():
    rng = np.random.default_rng(1)
    truth = rng.integers(0, len(LABELS), 80)
    probs = rng.dirichlet(np.ones(len(LABELS)), 80)
    probs[[2, 50]] = np.nan
    places = np.tile(np.arange(1, 41), 2)  # two sessions of 40 clips
    spans = by_session_position(truth, probs, places, LABELS)
    assert [s["positions"] for s in spans] == ["1-5", "6-15", "16-30", "31+"]
    assert [s["n"] for s in spans] == [10, 20, 30, 20]
    assert spans[0]["uar"] == emotion_report(truth[places <= 5], probs[places <= 5], LABELS)["uar"]
    folds = [by_session_position(truth[rows], probs[rows], places[rows], LABELS)
             for rows in (slice(0, 40), slice(40, 80))]
    assert pooled_by_position(folds) == [{key: s[key] for key in ("positions", "n", "no_speech", "accuracy", "uar")}
                                         for s in spans]


def test_a_span_without_a_class_has_no_recall_for_it_and_stays_strict_json():
    import json
    truth = np.array([0, 0, 1, 2, 2, 2, 0])
    probs = np.eye(3)[[0, 1, 1, 2, 2, 0, 0]]
    places = np.array([1, 2, 3, 6, 7, 8, 9])                 # no "happy" clip after place 5
    later = by_session_position(truth, probs, places, LABELS)[1]
    assert later["per_class"]["happy"]["recall"] is None and later["uar"] == 0.8333   # (1 + 2/3) / 2
    json.dumps(later, allow_nan=False)


def test_confusion_rows_are_truth_and_uar_skips_absent_classes():
    from ser_train.metrics import emotion_report
    truth = np.array([0, 0, 1])
    probs = np.array([[0.1, 0.9, 0.0], [0.8, 0.2, 0.0], [0.1, 0.9, 0.0]])
    r = emotion_report(truth, probs, ("a", "b", "c"))
    assert r["confusion"] == [[1, 1, 0], [0, 1, 0], [0, 0, 0]]
    assert r["uar"] == 0.75 and r["per_class"]["b"]["precision"] == 0.5


def test_ece_weights_each_bin_by_its_share_of_clips():
    from ser_train.metrics import expected_calibration_error
    probs = np.array([[0.95, 0.05]] * 3 + [[0.55, 0.45]])
    truth = np.array([0, 0, 0, 1])
    assert expected_calibration_error(probs, truth) == pytest.approx(0.75 * 0.05 + 0.25 * 0.55)


def test_clip_probabilities_are_duration_weighted():
    from ser_train.metrics import clip_probabilities
    ids, p = clip_probabilities(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([7, 7]), np.array([3.0, 1.0]))
    np.testing.assert_allclose(p, [[0.75, 0.25]])
