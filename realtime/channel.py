"""A telephone line's pass band (300-3400 Hz), applied to a stream before VAD and features."""

from __future__ import annotations

from typing import Iterable, Iterator, Sequence

import numpy as np

TAPS = 255   # at 16 kHz: about 200 Hz from pass to stop band, 53 dB down (Hamming window)


def pass_band(low_hz: float, high_hz: float, sample_rate: int) -> tuple[float, float]:
    """(low, high) as floats, or a ValueError saying why they are no pass band at ``sample_rate``."""
    low, high = float(low_hz), float(high_hz)
    if not 0 < low < high < sample_rate / 2:
        raise ValueError(f"a pass band needs 0 < LOW < HIGH < {sample_rate // 2} Hz, got {low_hz}-{high_hz}")
    return low, high


def band_text(band: Sequence[float]) -> str:
    """``(low, high)`` as the ``--band`` flags write it, e.g. ``300-3400``."""
    low, high = band
    return f"{low:g}-{high:g}"


class BandPass:
    """Linear-phase FIR band-pass (Hamming-windowed sinc) over a stream of blocks, with no delay.

    The output equals the filter run over the whole stream at once, whatever the block sizes: the
    filter's group delay is held back and delivered by :meth:`flush`, so as many samples come out as went in.
    """

    def __init__(self, low_hz: float, high_hz: float, sample_rate: int) -> None:
        self.low_hz, self.high_hz = pass_band(low_hz, high_hz, sample_rate)
        n = np.arange(TAPS) - (TAPS - 1) / 2
        low, high = self.low_hz / sample_rate, self.high_hz / sample_rate
        taps = (2 * high * np.sinc(2 * high * n) - 2 * low * np.sinc(2 * low * n)) * np.hamming(TAPS)
        self.taps = taps.astype(np.float32)
        self.reset()

    def reset(self) -> None:
        """Start a new stream."""
        self._history = np.zeros(TAPS - 1, dtype=np.float32)
        self._owed = (TAPS - 1) // 2   # leading outputs that only the group delay produced

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        """Filter one block; returns fewer samples than given only while the first half-length is held back."""
        padded = np.concatenate((self._history, samples.astype(np.float32, copy=False)))
        self._history = padded[len(samples):]
        out = np.convolve(padded, self.taps, mode="valid")   # direct: digital silence stays exactly 0
        held = min(self._owed, len(out))
        self._owed -= held
        return out[held:]

    def flush(self) -> np.ndarray:
        """End of stream: the held-back tail."""
        return self(np.zeros((TAPS - 1) // 2, dtype=np.float32))


def through(band: BandPass | None, blocks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """``blocks`` passed through ``band`` (as they are when None), its tail included."""
    if band is None:
        yield from blocks
        return
    yield from (band(block) for block in blocks)
    yield band.flush()
