"""Drive a source through the pipeline into sinks; shared by every `ser` command."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from realtime.monitor import Monitor
from realtime.pipeline import Event, Pipeline
from realtime.sinks import SCHEMA_VERSION, Sink, event_record
from realtime.sources import Chunk, SourceError, SourceStats

STATS_EVERY_S = 60.0


class Source(Protocol):
    stats: SourceStats
    def __iter__(self) -> Iterable[Chunk]: ...


def stats_record(monitor: Monitor, stats: SourceStats) -> dict:
    """A ``stats`` event: run counters, with the common keys present (empty, but for ``adapted_windows``)."""
    rtf = monitor.realtime_factor()
    p50, p95 = monitor.latency_percentile(50), monitor.latency_percentile(95)
    return {"schema": SCHEMA_VERSION, "type": "stats", "start_s": 0.0,
            "end_s": round(monitor.samples / monitor.sample_rate, 3),
            "emotion": None, "emotion_probs": {}, "gender": None, "gender_probs": {}, "smoothed_emotion": None,
            "latency_ms": None, "adapted_windows": monitor.adapted_windows,
            "windows": monitor.windows, "blocks": stats.blocks, "dropped_blocks": stats.dropped_blocks,
            "overflows": stats.overflows, "lost_s": round(stats.lost_s, 3),
            "behind_s": rounded(stats.behind_s), "max_behind_s": rounded(stats.max_behind_s),
            "nonfinite_samples": stats.nonfinite_samples,
            "clipped_blocks": monitor.clipped_blocks,
            "latency_p50_ms": rounded(p50), "latency_p95_ms": rounded(p95),
            "cpu_per_audio_s": None if rtf is None else round(rtf, 6)}


def rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def run(source: Source, pipeline: Pipeline, sinks: list[Sink], monitor: Monitor,
        should_stop: Callable[[], bool] = lambda: False, stats_every_s: float = STATS_EVERY_S) -> bool:
    """Stream until the source ends, ``should_stop()`` or Ctrl-C; return True if interrupted.

    On ``should_stop()`` a source with a ``stop()`` (a microphone) is asked to stop and read to its
    end, so the blocks it already delivered are scored; any other source is left at once.

    Every event goes to every sink; a ``stats`` event is written after the block that completes each
    ``stats_every_s`` of audio (one for a block that completes several), and at the end unless the last
    one already says the same (the CPU used aside). A :class:`SourceError` in
    mid-stream (a file that stops decoding) still closes the open window and
    writes the final ``stats`` event before it propagates, so nothing read is lost.
    """
    def send(record: dict) -> None:
        for sink in sinks:
            sink.write(record)

    def emit(events: list[Event]) -> None:
        for event in events:
            monitor.on_event(event, pipeline.smoother.probs, pipeline.gender_smoother.probs)
            send(event_record(event, pipeline.sample_rate))

    def counts(record: dict | None) -> dict | None:     # what a stats event says, but for the CPU it has used
        return None if record is None else {k: v for k, v in record.items() if k != "cpu_per_audio_s"}

    every = int(stats_every_s * pipeline.sample_rate)
    next_stats, last_stats = every, None
    interrupted = False
    failure: SourceError | None = None
    chunks = iter(source)
    try:
        for chunk in chunks:
            monitor.on_chunk(chunk.samples)
            emit(pipeline.push(chunk.samples))
            if monitor.samples >= next_stats:
                next_stats += every * ((monitor.samples - next_stats) // every + 1)
                last_stats = stats_record(monitor, source.stats)
                send(last_stats)
            if should_stop():
                interrupted = True
                stop = getattr(source, "stop", None)
                if stop is None:
                    break
                stop()   # a live source then ends once it has handed over the audio it already holds
    except KeyboardInterrupt:
        interrupted = True
        getattr(chunks, "close", lambda: None)()   # now, so a microphone counts what it never handed over
    except SourceError as exc:
        failure = exc
    emit(pipeline.flush())
    final = stats_record(monitor, source.stats)
    if counts(final) != counts(last_stats):      # else the last periodic one already says it all
        send(final)
    if failure is not None:
        raise failure
    return interrupted
