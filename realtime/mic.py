"""Microphone input through sounddevice, imported only when a device is used."""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from realtime.sources import DEFAULT_BLOCK, Chunk, Resampler, SourceError, SourceStats, to_mono_float

log = logging.getLogger(__name__)

PORTAUDIO_HINT = "PortAudio library not found: install it (Debian/Ubuntu: apt install libportaudio2; macOS: brew install portaudio)"
QUEUE_BLOCKS = 600            # bounded: 60 s of 100 ms blocks (PulseAudio holds about as much for a stalled
                              # client, which it delivers at once on waking); beyond that blocks are dropped and
                              # counted, until the reader has taken half, so that a loss is one gap, not many holes
CAPTURE_GAP_S = 0.5           # a jump of the capture clock beyond this is audio the host lost before the callback
                              # (its timestamps jitter by up to 0.1 s)
STOP_IDLE_POLLS = 5           # after a stop, 0.1 s polls with no audio before the backlog is taken as read
STALL_TIMEOUTS = 30           # 0.1 s polls with no audio before we call an active stream's device gone (an
                              # inactive stream ends at its first empty poll)


def import_sounddevice() -> ModuleType:
    """Import sounddevice, turning a missing PortAudio into a :class:`SourceError`."""
    try:
        import sounddevice
    except OSError:
        raise SourceError(PORTAUDIO_HINT) from None
    return sounddevice


@dataclass(frozen=True)
class Delivered:
    """A block as the callback queued it: its frames, the device frames lost just before it (to be filled
    with silence, so that stream times stay true), the capture time just after its last frame (0: unknown),
    how long after that the host handed it over (0: unknown) and when it was queued (``time.monotonic``)."""

    frames: np.ndarray
    gap: int
    capture_end: float
    host_delay: float
    queued: float


def silence(frames: int, block: int) -> Iterator[np.ndarray]:
    """``frames`` of mono silence in pieces of at most ``block``."""
    for start in range(0, frames, block):
        yield np.zeros(min(block, frames - start), np.float32)


@dataclass(frozen=True)
class InputDevice:
    index: int
    name: str
    channels: int
    default_rate: float


def audio_devices() -> list[InputDevice]:
    """Every device, its ``channels`` counting inputs only (0 for an output)."""
    sd = import_sounddevice()
    try:
        devices = sd.query_devices()
    except sd.PortAudioError as exc:
        raise SourceError(f"cannot list audio devices: {exc}") from None
    return [InputDevice(i, d["name"], d["max_input_channels"], d["default_samplerate"]) for i, d in enumerate(devices)]


def input_devices() -> list[InputDevice]:
    """All devices with at least one input channel."""
    return [d for d in audio_devices() if d.channels > 0]


def device_list(devices: list[InputDevice]) -> str:
    return ", ".join(f"{d.index}: {d.name}" for d in devices)


def resolve_device(spec: str | None) -> InputDevice:
    """Pick an input device by index or by a case-insensitive substring of its name (None: the default)."""
    devices = input_devices()
    if not devices:
        raise SourceError("no audio input device found; plug in a microphone or check `ser devices`")
    if spec is None:
        sd = import_sounddevice()
        try:   # the system's default input (PortAudio's, or sounddevice's sd.default.device if set)
            default = sd.query_devices(kind="input")["index"]
        except (sd.PortAudioError, ValueError):
            default = None
        return next((d for d in devices if d.index == default), devices[0])
    if not spec.strip():
        raise SourceError(f"--device is empty; give an index or part of a name: {device_list(devices)}")
    match = matching(spec, devices)
    if not match:
        outputs = matching(spec, [d for d in audio_devices() if d.channels == 0])
        if outputs:
            raise SourceError(f"'{spec}' is an output device with no input channels ({device_list(outputs)}); "
                              f"inputs: {device_list(devices)}")
        raise SourceError(f"no input device matches '{spec}'; available: {device_list(devices)}")
    if len(match) > 1:
        raise SourceError(f"'{spec}' matches {len(match)} input devices ({device_list(match)}); give the index "
                          f"or more of the name")
    return match[0]


def matching(spec: str, devices: list[InputDevice]) -> list[InputDevice]:
    """The devices ``spec`` names: by index, else by a case-insensitive substring of the name (an exact name wins)."""
    if spec.strip().isdecimal():
        return [d for d in devices if d.index == int(spec)]
    match = [d for d in devices if spec.lower() in d.name.lower()]
    return [d for d in match if d.name.lower() == spec.lower()] or match


class MicSource:
    """Blocks from an input device; the callback only copies and enqueues.

    The queue is a :class:`queue.SimpleQueue`, whose ``put`` takes no Python-level lock: a
    ``queue.Queue``'s mutex can be left held by an exception raised in the reading thread
    (Ctrl-C), and the callback would then wait on it forever, and closing the stream with it.
    Iteration ends when the device stops delivering, or after ``stop()`` once the audio captured
    before it is handed over, so a stop loses no audio. Audio lost on the way (blocks dropped
    from a full queue, or a jump in the device's capture clock) is counted and handed over as
    silence, so every later time is still the time the audio was captured.
    """

    def __init__(self, device: str | None, sample_rate: int, block: int = DEFAULT_BLOCK,
                 band_rate: int | None = None) -> None:
        self.device = resolve_device(device)
        self.sample_rate = sample_rate
        self.band_rate = band_rate   # pass the device's audio through this rate first (see Resampler)
        self.block = block
        self.stats = SourceStats()
        self.ended_reason: str | None = None
        self._queue: queue.SimpleQueue[Delivered] = queue.SimpleQueue()
        self._stopping = False
        self._rate = sample_rate      # the device's, once open
        self._dropping = False        # the callback's state: dropping until the reader catches up,
        self._gap = 0                 # the frames lost since the last block queued,
        self._next_capture = 0.0      # and when the next block's capture should begin (0: unknown)

    def describe(self) -> str:
        return f"{self.device.name} (device {self.device.index})"

    def stop(self) -> None:
        self._stopping = True

    def _callback(self, indata: np.ndarray, frames: int, time_info: object, status: object) -> None:
        if status and getattr(status, "input_overflow", False):
            self.stats.overflows += 1
        captured = float(getattr(time_info, "inputBufferAdcTime", 0.0) or 0.0)
        now = float(getattr(time_info, "currentTime", 0.0) or 0.0)
        if self._next_capture and captured - self._next_capture > CAPTURE_GAP_S:
            self._lose(round((captured - self._next_capture) * self._rate))
            self.stats.overflows += 1
        capture_end = captured + frames / self._rate if captured > 0 else 0.0
        self._next_capture = capture_end
        # only this thread puts, so the bound holds
        self._dropping = self._queue.qsize() > (QUEUE_BLOCKS // 2 if self._dropping else QUEUE_BLOCKS - 1)
        if self._dropping:
            self.stats.dropped_blocks += 1
            self._lose(frames)
        else:
            host_delay = max(now - capture_end, 0.0) if capture_end and now > 0 else 0.0
            self._queue.put(Delivered(indata.copy(), self._gap, capture_end, host_delay, time.monotonic()))
            self._gap = 0

    def _lose(self, frames: int) -> None:
        self._gap += frames
        self.stats.lost_s += frames / self._rate

    def _open(self, sd: ModuleType) -> tuple[object, int]:
        """Open at the model rate, else at the device's own rate (resampled later)."""
        rates = [self.sample_rate, int(self.device.default_rate)]
        for rate in dict.fromkeys(rates):
            try:
                stream = sd.InputStream(device=self.device.index, samplerate=rate, channels=1, dtype="float32",
                                        blocksize=self._device_block(rate), callback=self._callback)
                self._rate = rate
                return stream, rate
            except sd.PortAudioError as exc:
                error = exc
        raise SourceError(f"cannot open input device '{self.device.name}': {error}")

    def _device_block(self, rate: int) -> int:
        """The block size at the device's rate."""
        return int(self.block * rate / self.sample_rate)

    def __iter__(self) -> Iterator[Chunk]:
        sd = import_sounddevice()
        stream, rate = self._open(sd)
        resampler = Resampler(rate, self.sample_rate, self.band_rate)
        position = 0
        with closing(self._device_audio(stream, rate, sd.PortAudioError)) as audio:
            for samples in audio:
                mono = resampler(samples)
                yield Chunk(mono, position)
                position += len(mono)
        tail = resampler(np.zeros(0, np.float32), last=True)   # however the device ended
        if len(tail):
            yield Chunk(tail, position)

    def _device_audio(self, stream: object, rate: int, device_error: type[Exception]) -> Iterator[np.ndarray]:
        """Mono audio at the device's rate, with silence in place of what was lost; closes the stream."""
        per_block = self._device_block(rate)
        try:
            for item in self._blocks(stream, rate, device_error):
                self.stats.blocks += 1
                self.stats.note_behind(item.host_delay + time.monotonic() - item.queued)
                yield from silence(item.gap, per_block)
                yield to_mono_float(item.frames, self.stats)
        finally:
            stream.close(ignore_errors=True)
            self._count_unread()
        yield from silence(self._gap, per_block)   # blocks dropped after the last one queued

    def _blocks(self, stream: object, rate: int, device_error: type[Exception]) -> Iterator[Delivered]:
        """Blocks as the device delivers them, until it ends, or until ``stop()`` is called and the blocks
        captured before it (a backlog the host still holds) have arrived; then, once the callback has
        run for the last time, every block still queued."""
        idle, stop_at = 0, None
        try:
            stream.start()
            log.info("listening to %s at %d Hz", self.describe(), rate)
            while True:
                if self._stopping and stop_at is None:
                    stop_at = self._stop_time(stream, device_error)
                if stop_at == 0.0:
                    break
                try:
                    item = self._queue.get(timeout=0.1)
                except queue.Empty:
                    idle += 1
                    if stop_at is not None and idle >= STOP_IDLE_POLLS:
                        break
                    if not stream.active or idle >= STALL_TIMEOUTS:   # the callback may still run meanwhile
                        self.ended_reason = f"input device '{self.device.name}' stopped delivering audio"
                        break
                    continue
                idle = 0
                yield item
                if stop_at is not None and item.capture_end >= stop_at:
                    break
        except device_error as exc:
            self.ended_reason = f"input device '{self.device.name}' failed: {exc}"
        # returns once the callback has run for the last time; stop() would also wait for the device's
        # pending buffers, for good (deaf to signals) when the device has gone silent
        stream.abort(ignore_errors=True)
        while not self._queue.empty():    # only this thread takes from the queue
            yield self._queue.get_nowait()

    def _stop_time(self, stream: object, device_error: type[Exception]) -> float:
        """The capture clock's time at a stop (0: the device gives no capture times to wait for)."""
        try:
            return float(stream.time) if self._next_capture else 0.0
        except device_error:
            return 0.0

    def _count_unread(self) -> None:
        """Count as dropped (and lost) the blocks a reader that left early (a second Ctrl-C) never took."""
        unread = self._queue.qsize()
        while not self._queue.empty():    # the callback has run for the last time
            self.stats.lost_s += len(self._queue.get_nowait().frames) / self._rate
        if unread:
            self.stats.dropped_blocks += unread
            self.ended_reason = self.ended_reason or f"interrupted with {unread} delivered blocks unread (counted as dropped)"
