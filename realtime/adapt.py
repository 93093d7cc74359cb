"""Online speaker adaptation and probability smoothing."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AdaptConfig:
    """Session normalisation: prior weight (in windows) and per-window forgetting factor.

    ``variance_prior_windows`` is the prior's weight on the variance alone (None: ``prior_windows``).
    A session's variance from a few windows is far noisier than its mean, so it may be shrunk harder.
    Not ``enabled`` (`ser --no-adapt`): every window is a session of its own. Training's cold sessions are
    clips, which is the same for a clip of one window.
    """

    prior_windows: float = 2.0
    forgetting: float = 0.98
    enabled: bool = True
    variance_prior_windows: float | None = None

    @property
    def variance_prior(self) -> float:
        return self.prior_windows if self.variance_prior_windows is None else self.variance_prior_windows


class SpeakerAdapter:
    """Running per-session feature mean and variance, shrunk towards the population.

    Window ``n`` is normalised with statistics of windows ``1..n`` only, so the
    adapter never sees the future. Parameters are the population mean and standard
    deviation of the raw values, shape ``(dim,)``. A window is either one vector
    ``(dim,)`` or a matrix of frames ``(n_frames, dim)``, whose mean and second moment
    then count as one window.
    """

    def __init__(self, pop_mean: np.ndarray, pop_std: np.ndarray, config: AdaptConfig = AdaptConfig()) -> None:
        self.pop_mean = np.asarray(pop_mean, dtype=np.float64)
        self.pop_var = np.asarray(pop_std, dtype=np.float64) ** 2
        self.config = config
        self.reset()

    def reset(self) -> None:
        """Start a new session (new speaker)."""
        self.weight = 0.0
        self.windows_seen = 0
        self._sum = np.zeros_like(self.pop_mean)
        self._sum_sq = np.zeros_like(self.pop_mean)

    def update(self, x: np.ndarray) -> None:
        """Fold one completed window, ``(dim,)`` or ``(n_frames, dim)``, into the session statistics (not
        ``enabled``: it replaces them)."""
        if not self.config.enabled:
            self.reset()
        rows = np.atleast_2d(x)
        f = self.config.forgetting
        self.weight = f * self.weight + 1.0
        self._sum = f * self._sum + rows.mean(axis=0)
        self._sum_sq = f * self._sum_sq + (rows * rows).mean(axis=0)
        self.windows_seen += 1

    def normalize(self, x: np.ndarray) -> np.ndarray:
        """Standardise ``x`` (``(dim,)`` or ``(n_frames, dim)``) with the current shrunk session statistics."""
        k, k_var, w = self.config.prior_windows, self.config.variance_prior, self.weight
        mean = (k * self.pop_mean + self._sum) / (k + w)
        # spread about that mean: k_var windows of the population's, then the session's own windows
        spread = k_var * (self.pop_var + (self.pop_mean - mean) ** 2) + self._sum_sq - mean * (2 * self._sum - w * mean)
        std = np.sqrt(np.maximum(spread / (k_var + w), 1e-6 * self.pop_var + 1e-12))
        return ((x - mean) / std).astype(np.float32)

    def model_input(self, x: np.ndarray, pending: bool = False) -> np.ndarray:
        """The scorer's input, last axis ``2 * dim``: speaker-adapted z-scores, then population z-scores.

        The population half keeps absolute cues (pitch level, timbre) that gender needs
        and that per-speaker normalisation removes by design. ``pending``: ``x`` is a window still
        open (a partial), not folded in yet; it is normalised as if it were, as training normalises
        every window, and the statistics stay as they are.
        """
        if pending:
            trial = copy.copy(self)   # update() rebinds the statistics, so the copy shares nothing it changes
            trial.update(x)
            return trial.model_input(x)
        population = (x - self.pop_mean) / np.sqrt(self.pop_var)
        return np.concatenate((self.normalize(x), population.astype(np.float32)), axis=-1)


def normalize_session(windows: Iterable[np.ndarray], adapter: SpeakerAdapter) -> list[np.ndarray]:
    """Model inputs for a session's windows in order, each seeing only itself and earlier ones."""
    adapter.reset()
    out = []
    for x in windows:
        adapter.update(x)
        out.append(adapter.model_input(x))
    return out


class Smoother:
    """Exponential moving average of probabilities with a sticky displayed label.

    The displayed label changes only when another label leads the current one by
    more than ``margin``.
    """

    def __init__(self, labels: list[str], alpha: float = 0.4, margin: float = 0.05) -> None:
        self.labels = labels
        self.alpha = alpha
        self.margin = margin
        self.reset()

    def reset(self) -> None:
        self.probs: np.ndarray | None = None
        self.label: str | None = None

    def push(self, probs: np.ndarray) -> str:
        """Fold in one window's probabilities; return the displayed label."""
        self.probs = probs.copy() if self.probs is None else (1 - self.alpha) * self.probs + self.alpha * probs
        best = int(np.argmax(self.probs))
        if self.label is None:
            self.label = self.labels[best]
        else:
            current = self.probs[self.labels.index(self.label)]
            if self.probs[best] > current + self.margin:
                self.label = self.labels[best]
        return self.label
