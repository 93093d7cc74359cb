"""Run-wide counters and an immutable snapshot of what a person should see."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from realtime.pipeline import Event
from realtime.sources import SourceStats

LATENCY_HISTORY = 2048        # most recent decision latencies kept for percentiles
TIMELINE_S = 60.0             # seconds of segment history kept for the timeline
CLIP_LEVEL = 0.999            # a block peaking at or above this full-scale fraction counts as clipped
CLIP_HOLD_S = 2.0             # seconds of audio a clipping warning stays up after the last clipped block
SILENT_DBFS = -120.0          # the level meter's floor
SILENT_LEVEL = 10 ** (SILENT_DBFS / 20)
BEHIND_SHOWN_S = 1.0          # a live source this far behind its device is a warning in the dashboard and summary
QUIET_PEAK_DBFS = -40.0       # speech peaking below this is often not detected (RAVDESS clips scaled: 1 in 60
                              # found no window at -40 dBFS, 5 at -45, 26 at -50)


@dataclass(frozen=True)
class Snapshot:
    """Everything the dashboard renders; built from the pipeline thread, read by the screen."""

    source: str
    model: str
    labels: tuple[str, ...]
    gender_labels: tuple[str, ...]
    sample_rate: int
    elapsed_s: float
    position_s: float
    duration_s: float | None
    emotion_smoothed: dict[str, float]
    emotion_latest: dict[str, float]
    gender_smoothed: dict[str, float]
    leading: str | None
    in_speech: bool
    level_dbfs: float
    peak_dbfs: float
    clipping: bool
    window_s: float
    timeline: tuple[tuple[float, float, str], ...]
    windows: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    realtime_factor: float | None
    dropped_blocks: int
    overflows: int
    behind_s: float | None
    adapting: bool
    adapted_windows: int


@dataclass
class Monitor:
    """Accumulates run statistics as events and chunks pass by."""

    source: str
    model: str
    labels: tuple[str, ...]
    gender_labels: tuple[str, ...]
    sample_rate: int
    duration_s: float | None = None
    adapting: bool = True
    began: float = field(default_factory=time.monotonic)
    cpu_began: float = field(default_factory=time.process_time)
    samples: int = 0
    windows: int = 0
    level_dbfs: float = SILENT_DBFS
    peak_dbfs: float = SILENT_DBFS
    loudest_dbfs: float = SILENT_DBFS
    clipped_blocks: int = 0
    clipped_at: int | None = None
    in_speech: bool = False
    window_start: int = 0
    adapted_windows: int = 0
    emotion_smoothed: dict[str, float] = field(default_factory=dict)
    emotion_latest: dict[str, float] = field(default_factory=dict)
    gender_smoothed: dict[str, float] = field(default_factory=dict)
    leading: str | None = None
    latencies: list[float] = field(default_factory=list)
    timeline: list[tuple[float, float, str]] = field(default_factory=list)
    emotion_counts: dict[str, int] = field(default_factory=dict)

    def on_chunk(self, samples: np.ndarray) -> None:
        self.samples += len(samples)
        if len(samples):
            peak = max(float(np.maximum.reduce(samples)), -float(np.minimum.reduce(samples)))  # no wrappers
            wide = samples.astype(np.float64)
            rms = math.sqrt(float(np.dot(wide, wide)) / len(wide))
            self.level_dbfs = 20 * math.log10(max(rms, SILENT_LEVEL))
            peak_db = 20 * math.log10(max(peak, SILENT_LEVEL))
            self.peak_dbfs = max(self.peak_dbfs - 0.5, peak_db)
            self.loudest_dbfs = max(self.loudest_dbfs, peak_db)
            if peak >= CLIP_LEVEL:
                self.clipped_blocks += 1
                self.clipped_at = self.samples

    def on_event(self, event: Event, smoothed: np.ndarray | None, gender_smoothed: np.ndarray | None) -> None:
        if event.type == "speech_start":
            self.in_speech, self.window_start = True, event.start
            return
        self.windows += 1
        self.latencies.append(event.latency_ms)
        del self.latencies[:-LATENCY_HISTORY]
        self.emotion_latest = event.emotion_probs
        self.adapted_windows = event.adapted_windows
        self.leading = event.smoothed_emotion
        if smoothed is not None:
            self.emotion_smoothed = dict(zip(self.labels, smoothed.tolist()))
        if gender_smoothed is not None:
            self.gender_smoothed = dict(zip(self.gender_labels, gender_smoothed.tolist()))
        if event.type == "segment":
            self.in_speech = False
            end_s = event.end / self.sample_rate
            self.timeline.append((event.start / self.sample_rate, end_s, event.emotion))
            self.timeline = [t for t in self.timeline if t[1] >= end_s - TIMELINE_S]
            self.emotion_counts[event.emotion] = self.emotion_counts.get(event.emotion, 0) + 1

    def latency_percentile(self, q: float) -> float | None:
        return float(np.percentile(self.latencies, q)) if self.latencies else None

    def realtime_factor(self) -> float | None:
        """CPU seconds per audio second."""
        audio_s = self.samples / self.sample_rate
        return (time.process_time() - self.cpu_began) / audio_s if audio_s > 0 else None

    def snapshot(self, stats: SourceStats) -> Snapshot:
        position_s = self.samples / self.sample_rate
        return Snapshot(
            source=self.source, model=self.model, labels=self.labels, gender_labels=self.gender_labels,
            sample_rate=self.sample_rate, elapsed_s=time.monotonic() - self.began, position_s=position_s,
            duration_s=self.duration_s, emotion_smoothed=dict(self.emotion_smoothed),
            emotion_latest=dict(self.emotion_latest), gender_smoothed=dict(self.gender_smoothed),
            leading=self.leading, in_speech=self.in_speech, level_dbfs=self.level_dbfs, peak_dbfs=self.peak_dbfs,
            clipping=self.clipped_at is not None and self.samples - self.clipped_at <= CLIP_HOLD_S * self.sample_rate,
            window_s=(self.samples - self.window_start) / self.sample_rate if self.in_speech else 0.0,
            timeline=tuple(self.timeline), windows=self.windows,
            latency_p50_ms=self.latency_percentile(50), latency_p95_ms=self.latency_percentile(95),
            realtime_factor=self.realtime_factor(), dropped_blocks=stats.dropped_blocks,
            overflows=stats.overflows, behind_s=stats.behind_s, adapting=self.adapting,
            adapted_windows=self.adapted_windows)

    def summary(self, stats: SourceStats, reason: str | None = None) -> str:
        """The one-line summary printed when a run ends."""
        counts = ", ".join(f"{k} {v}" for k, v in sorted(self.emotion_counts.items(), key=lambda kv: -kv[1]))
        p50 = self.latency_percentile(50)
        rtf = self.realtime_factor()
        segments = sum(self.emotion_counts.values())
        parts = [f"{self.samples / self.sample_rate:.1f} s of audio", f"{self.windows} updates scored",
                 f"{segments} segment{'' if segments == 1 else 's'}" + (f": {counts}" if counts else ""),
                 f"latency p50 {p50:.1f} ms" if p50 is not None else "latency n/a",
                 f"CPU/audio {rtf:.4f}" if rtf is not None else "CPU/audio n/a",
                 f"dropped blocks {stats.dropped_blocks}", f"overflows {stats.overflows}"]
        if (stats.max_behind_s or 0.0) >= BEHIND_SHOWN_S:
            parts.append(f"up to {stats.max_behind_s:.1f} s behind the device")
        if stats.lost_s:
            parts.append(f"{stats.lost_s:.1f} s of audio lost (within the run replaced by silence, so times stay true)")
        if stats.nonfinite_samples:
            parts.append(f"non-finite samples zeroed {stats.nonfinite_samples}")
        if self.clipped_blocks:
            parts.append(f"clipped blocks {self.clipped_blocks}")
        if self.windows == 0 and self.samples and self.loudest_dbfs < QUIET_PEAK_DBFS:
            parts.append(self._quiet_hint())
        if reason:
            parts.append(reason)
        return "summary: " + "; ".join(parts)

    def _quiet_hint(self) -> str:
        if self.loudest_dbfs <= SILENT_DBFS:
            return "no speech found: the input is silent"
        return (f"no speech found: the input peaked at {self.loudest_dbfs:.0f} dBFS, and speech under "
                f"{QUIET_PEAK_DBFS:.0f} dBFS often goes undetected; raise the input gain")
