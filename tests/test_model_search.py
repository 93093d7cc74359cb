"""The streaming CV's model search sees only each fold's training speakers."""

import numpy as np

from ser_train import fit as fit_module
from ser_train.fit import FitConfig, nested_choice, speaker_splits
from ser_train.sessions import WindowTable


def table_of(speakers: list[str], windows_per_speaker: int = 6) -> WindowTable:
    """Random windows of two labels per speaker, real audio plus one voice-perturbed copy."""
    rng = np.random.default_rng(0)
    rows = [(s, factor) for s in speakers for factor in (1.0, 0.9) for _ in range(windows_per_speaker)]
    n = len(rows)
    frames = np.empty(n, dtype=object)
    for i in range(n):
        frames[i] = rng.standard_normal((5, 3))
    return WindowTable(x=rng.standard_normal((n, 4)), frames=frames, label=np.arange(n) % 2, gender=np.zeros(n, int),
                       speaker=np.array([s for s, _ in rows]), session=np.array([f"{s}@{f:g}" for s, f in rows]),
                       factor=np.array([f for _, f in rows]), clip=np.arange(n), duration_s=np.ones(n),
                       labels=("neutral", "angry"))


def test_nested_choice_never_sees_the_held_out_speakers(monkeypatch):
    table = table_of(["a", "b", "c", "d", "e"])
    seen: list[set] = []

    def fake_scores(inner, candidate, fit, splits):
        seen.append(set(inner.speaker.tolist()))
        for train, test in splits:                  # inner splits are grouped by speaker too
            assert not set(inner.speaker[train]) & set(inner.speaker[test])
        # a score that depends on which speakers are present, so a leak would change the choice
        score = 0.5 + 0.1 * ("e" in seen[-1]) * (candidate.params["C"] == 0.1)
        return {"adapt": {"uar": score, "accuracy": score}, "cold": {"uar": score, "accuracy": score}}

    monkeypatch.setattr(fit_module, "_fold_scores", fake_scores)
    config = FitConfig(families=("logreg",), folds=5)
    choices = {}
    for train, test in speaker_splits(table, 5):
        held = set(table.speaker[test].tolist())
        seen.clear()
        choices[held.pop()] = nested_choice(table.subset(train), config).name
        assert seen and all(not (speakers & set(table.speaker[test])) for speakers in seen)
    assert choices["e"] == "logreg(C=0.01)"           # without speaker e, C=0.1 has no edge
    assert {name for held, name in choices.items() if held != "e"} == {"logreg(C=0.1)"}
