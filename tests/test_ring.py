import numpy as np
import pytest

from realtime.ring import RingBuffer


def test_wraps_around_and_keeps_the_newest_rows():
    ring = RingBuffer(10)
    ramp = np.arange(37, dtype=np.float32)
    for start in range(0, 37, 7):
        ring.write(ramp[start:start + 7])
    assert ring.written == 37 and ring.oldest == 27
    np.testing.assert_array_equal(ring.read(27, 37), ramp[27:37])
    np.testing.assert_array_equal(ring.read(30, 33), ramp[30:33])


def test_write_larger_than_capacity_keeps_the_tail():
    ring = RingBuffer(4, (2,), np.float64)
    rows = np.arange(20, dtype=np.float64).reshape(10, 2)
    ring.write(rows)
    np.testing.assert_array_equal(ring.read(6, 10), rows[6:])


def test_reading_overwritten_or_future_rows_raises():
    ring = RingBuffer(5)
    ring.write(np.arange(8, dtype=np.float32))
    with pytest.raises(IndexError):
        ring.read(2, 6)
    with pytest.raises(IndexError):
        ring.read(5, 9)


def test_seek_rewrites_from_a_position():
    ring = RingBuffer(8)
    ring.write(np.arange(6, dtype=np.float32))
    ring.seek(4)
    ring.write(np.array([40, 50, 60], dtype=np.float32))
    np.testing.assert_array_equal(ring.read(2, 7), [2, 3, 40, 50, 60])


def test_reads_are_copies_whether_or_not_they_wrap():
    ring = RingBuffer(6)
    ring.write(np.arange(9, dtype=np.float32))       # holds 3..8; 6..8 wrapped to the front
    for start, stop in ((3, 6), (3, 9), (7, 9), (5, 5)):
        rows = ring.read(start, stop)
        np.testing.assert_array_equal(rows, np.arange(start, stop))
        rows += 100
    np.testing.assert_array_equal(ring.read(3, 9), np.arange(3, 9))
