"""Soak: hours of speech through the full pipeline, as fast as possible, watching memory.

The stream is generated on the fly, never held whole: RAVDESS clips (or, without
``--corpus`` and without ``../shared/data/ravdess``, the bundled demo) each streamed with
:class:`FileSource`, separated by seeded pauses of faint noise, re-stamped as one
continuous stream::

    python -m benchmarks.soak --hours 2 --corpus ../shared/data/ravdess

Reports the resident set size after warm-up and at the end, and events per hour of audio.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from benchmarks.arguments import float_range, output_file, refuse
from benchmarks.command import run_command, shown, write_json
from benchmarks.measure import run_whole
from realtime.cli import demo_path
from realtime.monitor import Monitor
from realtime.pipeline import Pipeline
from realtime.scorer import DEFAULT_MODEL, Scorer
from realtime.sources import DEFAULT_BLOCK, Chunk, FileSource, SourceError, SourceStats, open_sound_file

log = logging.getLogger("soak")

PAUSE_S = (0.5, 2.0)          # pause between clips, drawn uniformly
ROOM_NOISE_RMS = 3e-5         # -90 dBFS white noise in the pauses (below the VAD floor, like the clips)
DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "ravdess"
CLIPS = "Actor_*/*.flac"      # a RAVDESS-style corpus
HOURS = (0.001, 1000.0)       # streamed, never held in memory


def rss_mb() -> float:
    """Current resident set size of this process in MB (Linux /proc)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def clip_paths(corpus: Path | None) -> list[Path]:
    """The corpus' clips in a fixed order, each opened once to check it; the bundled demo for None.

    Raises ValueError for a corpus without clips, :class:`SourceError` (a ValueError) for a clip that will not open.
    """
    if corpus is None:
        return [demo_path()]
    clips = sorted(corpus.glob(CLIPS)) if corpus.is_dir() else []
    if not clips:
        raise ValueError(f"--corpus {corpus}: no {CLIPS} files there")
    for clip in clips:
        open_sound_file(clip).close()   # now, not hours into the run
    return clips


class SpeechStream:
    """Clips and pauses as one stream of ``block``-sample chunks, up to ``total_s`` seconds.

    Parameters
    ----------
    clips : list of Path
        Played in order, cycling.
    total_s : float
        Length of the stream; the last clip is cut there.
    sample_rate, block : int
        Model rate and chunk size in samples.
    seed : int
        Seeds the pause lengths and the room noise.
    """

    def __init__(self, clips: list[Path], total_s: float, sample_rate: int, block: int = DEFAULT_BLOCK,
                 seed: int = 0) -> None:
        self.clips = clips
        self.total = int(total_s * sample_rate)
        self.sample_rate = sample_rate
        self.block = block
        self.rng = np.random.default_rng(seed)
        self.stats = SourceStats()
        self.clips_played = 0

    def describe(self) -> str:
        return f"soak stream ({len(self.clips)} clips, {self.total / self.sample_rate:.0f} s)"

    def _pieces(self) -> Iterator[np.ndarray]:
        index = 0
        while True:
            clip = FileSource(self.clips[index % len(self.clips)], self.sample_rate, self.block, speed=0)
            self.clips_played += 1
            yield from (chunk.samples for chunk in clip)
            self.stats.nonfinite_samples += clip.stats.nonfinite_samples
            pause = int(self.rng.uniform(*PAUSE_S) * self.sample_rate)
            for start in range(0, pause, self.block):
                n = min(self.block, pause - start)
                yield (ROOM_NOISE_RMS * self.rng.standard_normal(n)).astype(np.float32)
            index += 1

    def __iter__(self) -> Iterator[Chunk]:
        position = 0
        for samples in self._pieces():
            samples = samples[:self.total - position]
            self.stats.blocks += 1
            yield Chunk(samples, position)
            position += len(samples)
            if position >= self.total:
                return


@dataclass
class MemoryProbe:
    """A sink that counts events and samples the RSS at every ``stats`` event."""

    warmup_s: float
    counts: Counter = field(default_factory=Counter)
    rss_warm_mb: float | None = None
    rss_peak_mb: float = 0.0
    last_stats: dict = field(default_factory=dict)

    def write(self, record: dict) -> None:
        self.counts[record["type"]] += 1
        if record["type"] == "stats":
            rss = rss_mb()
            self.rss_peak_mb = max(self.rss_peak_mb, rss)
            if self.rss_warm_mb is None and record["end_s"] >= self.warmup_s:
                self.rss_warm_mb = rss
            self.last_stats = record

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class SoakReport:
    audio_s: float
    wall_s: float
    clips: int
    rss_warm_mb: float | None    # None: the run ended before the warm-up did
    rss_end_mb: float
    rss_peak_mb: float
    events_per_hour: dict[str, float]
    dropped_blocks: int
    latency_p95_ms: float | None

    @property
    def growth_mb(self) -> float | None:
        return None if self.rss_warm_mb is None else self.rss_end_mb - self.rss_warm_mb


def soak(total_s: float, clips: list[Path], warmup_s: float) -> SoakReport:
    """Stream ``total_s`` seconds of clips and pauses through ``ser``'s runner and measure it."""
    scorer = Scorer(DEFAULT_MODEL)
    card = scorer.card
    source = SpeechStream(clips, total_s, card.spec.sample_rate)
    monitor = Monitor(source.describe(), card.name, tuple(card.labels), tuple(card.gender_labels),
                      card.spec.sample_rate)
    probe = MemoryProbe(warmup_s)
    began = time.perf_counter()
    run_whole(source, Pipeline(scorer), [probe], monitor)
    audio_s = probe.last_stats["end_s"]
    return SoakReport(audio_s=audio_s, wall_s=time.perf_counter() - began, clips=source.clips_played,
                      rss_warm_mb=probe.rss_warm_mb,
                      rss_end_mb=rss_mb(), rss_peak_mb=probe.rss_peak_mb,
                      events_per_hour={k: round(v * 3600 / audio_s, 1) for k, v in sorted(probe.counts.items())},
                      dropped_blocks=probe.last_stats["dropped_blocks"],
                      latency_p95_ms=probe.last_stats["latency_p95_ms"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float_range(*HOURS), default=2.0,
                        help=f"audio to stream, {HOURS[0]:g}-{HOURS[1]:g} hours (default 2)")
    parser.add_argument("--warmup-min", type=float_range(0, 60 * HOURS[1]), default=10.0,
                        help=f"audio minutes before the baseline RSS, 0-{60 * HOURS[1]:g} (default 10)")
    parser.add_argument("--corpus", type=Path,
                        help=f"RAVDESS-style folder ({CLIPS}) to draw clips from (default ../shared/data/ravdess; "
                             "without it, the bundled demo)")
    parser.add_argument("--json", type=output_file, help="also write the report here")
    args = parser.parse_args(argv)
    corpus = DEFAULT_CORPUS if args.corpus is None and any(DEFAULT_CORPUS.glob(CLIPS)) else args.corpus
    try:
        clips = clip_paths(corpus)
    except ValueError as exc:
        refuse(parser, exc)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        report = soak(args.hours * 3600, clips, args.warmup_min * 60)
    except SourceError as exc:   # a clip that opened but stops decoding
        refuse(parser, exc)
    log.info("%.2f h of audio (%d clips from %d files) in %.0f s (%.0fx real time)", report.audio_s / 3600,
             report.clips, len(clips), report.wall_s, report.audio_s / report.wall_s)
    if report.growth_mb is None:
        log.info("RSS at the end %.1f MB (peak %.1f MB); no growth figure: the run was shorter than the %.0f min "
                 "warm-up", report.rss_end_mb, report.rss_peak_mb, args.warmup_min)
    else:
        log.info("RSS after %.0f min warm-up %.1f MB, at the end %.1f MB (growth %+.2f MB, peak %.1f MB)",
                 args.warmup_min, report.rss_warm_mb, report.rss_end_mb, report.growth_mb, report.rss_peak_mb)
    log.info("events per hour of audio: %s; dropped blocks %d; latency p95 %s ms",
             ", ".join(f"{k} {v:.0f}" for k, v in report.events_per_hour.items()), report.dropped_blocks,
             shown(report.latency_p95_ms))
    if args.json:
        write_json(args.json, {**asdict(report), "growth_mb": report.growth_mb})
    return 0


if __name__ == "__main__":
    run_command("soak", main)
