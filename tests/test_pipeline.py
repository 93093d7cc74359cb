import numpy as np

from realtime.features import DEFAULT_SPEC
from realtime.pipeline import WindowFeaturizer
from tests.conftest import bursts


def windows(x: np.ndarray, chunk: int) -> list:
    featurizer = WindowFeaturizer(DEFAULT_SPEC)
    out = [pair for i in range(0, len(x), chunk) for pair in featurizer.push(x[i:i + chunk])] + featurizer.flush()
    return [(w, v) for w, v in out if v is not None]


def test_one_huge_push_equals_small_blocks():
    """A whole 60 s stream pushed at once (longer than the frame history) gives the same windows and vectors."""
    spans = tuple((s, s + 2.5, "speechlike") for s in np.arange(1.0, 58.0, 4.0))
    x = bursts(total_s=60.0, spans=spans)
    small, huge = windows(x, 1600), windows(x, len(x))
    assert len(small) == len(huge) >= len(spans)
    for (w_small, v_small), (w_huge, v_huge) in zip(small, huge):
        assert w_small == w_huge
        assert np.any(v_small) and np.allclose(v_small, v_huge, rtol=1e-9, atol=1e-9)
