import numpy as np
import pytest

from ser_train.models import balanced_class_weights, candidates, fit_weighted


def test_balanced_weights_give_every_present_class_the_same_total():
    labels = np.array([0, 0, 0, 0, 2, 2, 3])
    weights = balanced_class_weights(labels, 4)
    totals = np.bincount(labels, weights=weights[labels], minlength=4)
    assert totals[1] == 0.0                                  # absent class: no rows, no weight
    assert np.allclose(totals[[0, 2, 3]], len(labels) / 3)   # present classes share the rows equally
    assert weights[labels].mean() == pytest.approx(1.0)      # the mean row weight stays 1 (regularisation unchanged)


@pytest.mark.parametrize("family", ["logreg", "svc", "mlp", "hgb"])
def test_weighted_fit_reaches_every_family(family):
    """Weights reach the classifier: upweighting a minority class raises its predicted share.

    Both fits are seeded alike, so had the weights not reached the model they would be identical.
    """
    rng = np.random.default_rng(0)
    x = rng.standard_normal((240, 4))
    y = (np.arange(240) % 6 == 0).astype(int)                 # class 1 is a sixth of the rows, with no signal
    groups = np.arange(240) // 40                              # six speakers, each with both classes
    unseen = rng.standard_normal((500, 4))
    candidate = candidates([family])[0]
    plain = fit_weighted(candidate.build(groups), x, y, np.ones(len(y)))
    balanced = fit_weighted(candidate.build(groups), x, y, balanced_class_weights(y, 2)[y])
    assert balanced.predict_proba(unseen)[:, 1].mean() > plain.predict_proba(unseen)[:, 1].mean() + 0.05
