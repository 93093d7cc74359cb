import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from threadpoolctl import threadpool_limits
from sklearn.linear_model import LogisticRegression

from realtime.adapt import AdaptConfig, SpeakerAdapter
from realtime.features import DEFAULT_SPEC
from realtime.pipeline import Pipeline
from realtime.scorer import Scorer
from ser_train.export import _head, check_equality, flush_subnormals, merge_heads, write_model
from ser_train.fit import FitConfig, model_card
from ser_train.frame_model import FrameModelConfig, train_frame_member
from ser_train.models import candidates
from tests.conftest import LABELS, bursts, needs_torch

WIDTH = 2 * DEFAULT_SPEC.dim


def _toy_windows(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` labels cycling through LABELS, and float32 windows each shifted slightly by its label."""
    labels = np.arange(n) % len(LABELS)
    return labels, (rng.standard_normal((n, WIDTH)) + labels[:, None] * 0.05).astype(np.float32)


@pytest.mark.parametrize("candidate", candidates(["logreg", "svc", "mlp", "hgb"])[::2], ids=lambda c: c.family)
def test_onnx_equals_sklearn_for_every_family(candidate, tmp_path):
    rng = np.random.default_rng(0)
    labels, x = _toy_windows(rng, 240)
    speakers = np.repeat(np.arange(6), 40)
    emotion = candidate.build(speakers)
    if candidate.family == "hgb":
        emotion.set_params(max_iter=20)  # same converter path; fewer trees keep the test fast
    with threadpool_limits(1):  # OpenMP on a busy 2-core machine oversubscribes badly
        emotion.fit(x, labels)
    gender = LogisticRegression(max_iter=500).fit(x, speakers % 2)
    adapter = SpeakerAdapter(np.zeros(DEFAULT_SPEC.dim), np.ones(DEFAULT_SPEC.dim), AdaptConfig())
    card = model_card("t", LABELS, adapter, ["synthetic"], FitConfig(), {})
    with warnings.catch_warnings():  # e.g. scikit-learn 1.9's on SVC.probA_, which skl2onnx reads
        warnings.simplefilter("error", FutureWarning)
        merged = merge_heads(emotion, gender, WIDTH)
    path, _ = write_model(tmp_path / "t", merged, card)
    diff = check_equality(path, emotion, gender, x[:50])
    assert diff <= 1e-4
    emotion_probs, gender_probs = Scorer(path).score(x[:5])
    np.testing.assert_allclose(emotion_probs, emotion.predict_proba(x[:5]), atol=1e-4)
    np.testing.assert_allclose(gender_probs, gender.predict_proba(x[:5]), atol=1e-4)


@needs_torch
def test_frame_ensemble_graph_equals_the_blend_and_serves_in_the_pipeline(tmp_path):
    """The merged graph gives (1 - w) * sklearn + w * torch, and a pipeline feeds it frames from real windows."""
    rng = np.random.default_rng(0)
    labels, x = _toy_windows(rng, 48)
    emotion = LogisticRegression(max_iter=500).fit(x, labels)
    gender = LogisticRegression(max_iter=500).fit(x, labels % 2)
    columns = len(DEFAULT_SPEC.frame_names)
    frame_adapter = SpeakerAdapter(np.zeros(columns), np.ones(columns), AdaptConfig())
    inputs = [frame_adapter.model_input(rng.normal(size=(int(rng.integers(25, 120)), columns))) for _ in labels]
    member = train_frame_member([[z] for z in inputs], labels, len(LABELS), len(labels), frame_adapter,
                                FrameModelConfig(epochs=1), seed=0)
    adapter = SpeakerAdapter(np.zeros(DEFAULT_SPEC.dim), np.ones(DEFAULT_SPEC.dim), AdaptConfig())
    card = model_card("t", LABELS, adapter, ["synthetic"], FitConfig(), {}, True, member)
    path, _ = write_model(tmp_path / "t", merge_heads(emotion, gender, WIDTH, member), card)
    assert check_equality(path, emotion, gender, x[:8], member, inputs[:8]) <= 1e-4
    scorer = Scorer(path)
    assert scorer.card.uses_frames
    with pytest.raises(ValueError, match="frames"):
        scorer.score(x[:1])
    audio = bursts(total_s=8.0, spans=((1.0, 3.5, "speechlike"), (4.5, 7.0, "speechlike")))
    pipeline = Pipeline(scorer)
    events = [e for i in range(0, len(audio), 1600) for e in pipeline.push(audio[i:i + 1600])] + pipeline.flush()
    segments = [e for e in events if e.type == "segment"]
    assert len(segments) == 2 and pipeline.frame_adapter.windows_seen == 2
    for event in segments:
        assert abs(sum(event.emotion_probs.values()) - 1.0) < 1e-3


def _subnormal_weights(model: onnx.ModelProto) -> int:
    arrays = [numpy_helper.to_array(i) for i in model.graph.initializer]
    return sum(int(np.count_nonzero((a != 0) & (np.abs(a) < np.finfo(np.float32).tiny)))
               for a in arrays if a.dtype == np.float32)


def test_subnormal_weights_are_flushed_without_changing_the_scores(tmp_path):
    """An MLP whose decayed weights fall below float32's normal range exports with them at zero, scores unchanged."""
    from sklearn.neural_network import MLPClassifier

    rng = np.random.default_rng(0)
    labels, x = _toy_windows(rng, 160)
    emotion = MLPClassifier((16,), max_iter=50, random_state=0).fit(x, labels)
    emotion.coefs_[0][::3] = 1e-41      # as decay leaves unused inputs' weights
    gender = LogisticRegression(max_iter=500).fit(x, labels % 2)
    converted = _head(emotion, WIDTH, "emo_")
    subnormal = _subnormal_weights(converted)
    assert subnormal >= WIDTH // 3 * 16          # the converter keeps them, as float32 subnormals
    assert flush_subnormals(converted) == subnormal and _subnormal_weights(converted) == 0
    model = merge_heads(emotion, gender, WIDTH)
    assert _subnormal_weights(model) == 0
    card = model_card("t", LABELS, SpeakerAdapter(np.zeros(DEFAULT_SPEC.dim), np.ones(DEFAULT_SPEC.dim),
                                                  AdaptConfig()), ["synthetic"], FitConfig(), {})
    path, _ = write_model(tmp_path / "t", model, card)
    assert check_equality(path, emotion, gender, x[:40]) <= 1e-4


def test_shipped_models_hold_no_subnormal_weights():
    shipped = sorted((Path(__file__).resolve().parents[1] / "models").glob("*.onnx"))
    assert len(shipped) >= 4
    for path in shipped:
        assert _subnormal_weights(onnx.load(str(path))) == 0, path.name


def test_check_equality_refuses_a_graph_whose_gender_head_differs(tmp_path):
    from sklearn.linear_model import LogisticRegression
    from realtime.adapt import AdaptConfig, SpeakerAdapter
    from ser_train.export import EQUALITY_ATOL, ExportError, check_equality, merge_heads, write_model
    from ser_train.fit import FitConfig, model_card
    from tests.conftest import LABELS
    assert EQUALITY_ATOL <= 1e-4
    width = 2 * DEFAULT_SPEC.dim
    rng = np.random.default_rng(0)
    x = rng.standard_normal((80, width)).astype(np.float32)
    emotion = LogisticRegression(max_iter=300).fit(x, np.arange(80) % len(LABELS))
    gender = LogisticRegression(max_iter=300).fit(x, np.arange(80) % 2)
    other = LogisticRegression(max_iter=300).fit(x, (np.arange(80) // 3) % 2)
    card = model_card("t", LABELS, SpeakerAdapter(np.zeros(DEFAULT_SPEC.dim), np.ones(DEFAULT_SPEC.dim), AdaptConfig()),
                      ["synthetic"], FitConfig(), {})
    path, _ = write_model(tmp_path / "t", merge_heads(emotion, gender, width), card)
    with pytest.raises(ExportError):
        check_equality(path, emotion, other, x[:20])
