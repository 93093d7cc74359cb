import numpy as np
import pytest
from threadpoolctl import threadpool_limits
from sklearn.linear_model import LogisticRegression

from realtime.adapt import AdaptConfig, SpeakerAdapter
from realtime.features import DEFAULT_SPEC
from realtime.scorer import Scorer
from ser_train.export import check_equality, merge_heads, write_model
from ser_train.fit import FitConfig, model_card
from ser_train.models import candidates
from tests.conftest import LABELS

WIDTH = 2 * DEFAULT_SPEC.dim


@pytest.mark.parametrize("candidate", candidates(["logreg", "svc", "mlp", "hgb"])[::2], ids=lambda c: c.family)
def test_onnx_equals_sklearn_for_every_family(candidate, tmp_path):
    rng = np.random.default_rng(0)
    labels = np.arange(240) % len(LABELS)
    x = (rng.standard_normal((240, WIDTH)) + labels[:, None] * 0.05).astype(np.float32)
    speakers = np.repeat(np.arange(6), 40)
    emotion = candidate.build(speakers)
    if candidate.family == "hgb":
        emotion.set_params(max_iter=20)  # same converter path; fewer trees keep the test fast
    with threadpool_limits(1):  # OpenMP on a busy 2-core machine oversubscribes badly
        emotion.fit(x, labels)
    gender = LogisticRegression(max_iter=500).fit(x, speakers % 2)
    adapter = SpeakerAdapter(np.zeros(DEFAULT_SPEC.dim), np.ones(DEFAULT_SPEC.dim), AdaptConfig())
    card = model_card("t", LABELS, adapter, ["synthetic"], FitConfig(), {})
    path, _ = write_model(tmp_path / "t", merge_heads(emotion, gender, WIDTH), card)
    diff = check_equality(path, emotion, gender, x[:50])
    assert diff <= 1e-4
    emotion_probs, gender_probs = Scorer(path, DEFAULT_SPEC).score(x[:5])
    np.testing.assert_allclose(emotion_probs, emotion.predict_proba(x[:5]), atol=1e-4)
    np.testing.assert_allclose(gender_probs, gender.predict_proba(x[:5]), atol=1e-4)
