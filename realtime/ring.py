"""Preallocated ring buffer addressed by absolute item index."""

from __future__ import annotations

import numpy as np


class RingBuffer:
    """Fixed-capacity FIFO of rows, indexed by the absolute count of rows written.

    Parameters
    ----------
    capacity : int
        Number of rows kept; older rows are overwritten.
    row_shape : tuple of int
        Shape of one row (``()`` for scalar samples).
    dtype : numpy dtype
        Storage type (the feature stream keeps its audio and frames as float64).
    """

    def __init__(self, capacity: int, row_shape: tuple[int, ...] = (), dtype: type = np.float32) -> None:
        if capacity <= 0:
            raise ValueError(f"ring capacity must be positive, got {capacity}")
        self._data = np.zeros((capacity, *row_shape), dtype=dtype)
        self.capacity = capacity
        self.written = 0

    def reset(self) -> None:
        """Forget everything written; keeps the allocation."""
        self.written = 0

    @property
    def oldest(self) -> int:
        """Absolute index of the oldest row still held."""
        return max(0, self.written - self.capacity)

    def seek(self, position: int) -> None:
        """Continue writing at absolute index ``position`` (rows from there on are rewritten or skipped)."""
        if position < 0:
            raise ValueError(f"ring position must be non-negative, got {position}")
        self.written = position

    def write(self, rows: np.ndarray) -> None:
        """Append ``rows`` (shape ``(n, *row_shape)``), overwriting the oldest."""
        n = len(rows)
        if n > self.capacity:
            rows = rows[n - self.capacity:]
            self.written += n - self.capacity
            n = self.capacity
        pos = self.written % self.capacity
        first = min(n, self.capacity - pos)
        self._data[pos:pos + first] = rows[:first]
        if first < n:
            self._data[:n - first] = rows[first:]
        self.written += n

    def read(self, start: int, stop: int) -> np.ndarray:
        """Return a copy of rows ``[start, stop)`` by absolute index.

        Raises
        ------
        IndexError
            When part of the range was overwritten or not yet written.
        """
        if start < self.oldest or stop > self.written or start > stop:
            raise IndexError(f"rows [{start}, {stop}) not held; buffer holds [{self.oldest}, {self.written})")
        begin, n = start % self.capacity, stop - start
        if begin + n <= self.capacity:     # one slice: no index array
            return self._data[begin:begin + n].copy()
        return np.concatenate((self._data[begin:], self._data[:begin + n - self.capacity]))
