"""Candidate classifiers (the families and their grids) that the speaker-grouped model search tries, and the gender head."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC


@dataclass(frozen=True)
class Candidate:
    """A named classifier configuration."""

    family: str
    params: dict

    @property
    def name(self) -> str:
        return self.family + "(" + ", ".join(f"{k}={v}" for k, v in self.params.items()) + ")"

    def build(self, groups: np.ndarray, seed: int = 0) -> ClassifierMixin:
        """A fresh estimator; ``groups`` (speaker per training row) keeps any internal CV speaker-grouped."""
        return FAMILIES[self.family](groups, seed, **self.params)


def _logreg(groups: np.ndarray, seed: int, C: float) -> ClassifierMixin:
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=3000))


def _svc(groups: np.ndarray, seed: int, C: float) -> ClassifierMixin:
    """Calibrated on speaker-grouped folds: session copies of a clip never straddle a split."""
    folds = list(GroupKFold(3).split(np.zeros(len(groups)), groups=groups))
    return make_pipeline(StandardScaler(), CalibratedClassifierCV(SVC(C=C, gamma="scale"), ensemble=False, cv=folds))


def _mlp(groups: np.ndarray, seed: int, hidden: int, alpha: float) -> ClassifierMixin:
    return make_pipeline(StandardScaler(), MLPClassifier((hidden,), alpha=alpha, max_iter=200, random_state=seed))


def _hgb(groups: np.ndarray, seed: int, learning_rate: float) -> ClassifierMixin:
    return HistGradientBoostingClassifier(learning_rate=learning_rate, max_iter=200, max_leaf_nodes=15,
                                          l2_regularization=1.0, random_state=seed)


FAMILIES: dict[str, Callable[..., ClassifierMixin]] = {"logreg": _logreg, "svc": _svc, "mlp": _mlp, "hgb": _hgb}

GRIDS: dict[str, dict[str, list]] = {
    "logreg": {"C": [0.01, 0.1]},
    "svc": {"C": [1.0, 10.0]},
    "mlp": {"hidden": [256, 512], "alpha": [1.0, 3.0, 10.0]},
    "hgb": {"learning_rate": [0.1]},
}


def candidates(families: list[str]) -> list[Candidate]:
    """Every grid point of the named families."""
    out = []
    for family in families:
        if family not in GRIDS:
            raise ValueError(f"unknown classifier family {family!r}; choose from {', '.join(GRIDS)}")
        grid = GRIDS[family]
        out.extend(Candidate(family, dict(zip(grid, values))) for values in itertools.product(*grid.values()))
    return out


def gender_classifier() -> ClassifierMixin:
    """The gender head: a regularised linear model (gender is easy, keep it small and calibrated)."""
    return make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000))
