"""The live dashboard: :class:`Frame` draws one frame, :class:`Dashboard` keeps it on screen.

Imported only when a screen is wanted, never with ``--headless``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack, redirect_stdout
from dataclasses import dataclass
from itertools import groupby
from operator import itemgetter
from types import TracebackType
from typing import IO

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.live import Live
from rich.measure import Measurement
from rich.panel import Panel
from rich.segment import Segment
from rich.text import Text

from realtime.keys import KeyReader
from realtime.monitor import BEHIND_SHOWN_S, TIMELINE_S, Monitor, Snapshot
from realtime.sources import SourceStats

REFRESH_HZ = 8.0
LEVEL_FLOOR_DBFS = -60.0      # left end of the input level meter
EMOTION_COLOURS = {"neutral": "grey70", "calm": "cyan", "happy": "yellow", "sad": "blue", "angry": "red",
                   "fearful": "magenta", "disgust": "green", "surprised": "dark_orange"}
SPARE_COLOURS = ("bright_cyan", "bright_yellow", "bright_blue", "bright_red", "bright_green", "bright_magenta")
GENDER_COLOURS = ("orchid", "dodger_blue1")
EIGHTHS = " ▏▎▍▌▋▊▉"
GAUGE_ROWS = 4                # height of the gender panel; the activity panel takes the rest of the row


def label_colour(labels: tuple[str, ...], label: str) -> str:
    """The colour of an emotion: a fixed one for the standard labels, a spare one otherwise."""
    return EMOTION_COLOURS.get(label) or SPARE_COLOURS[labels.index(label) % len(SPARE_COLOURS)]


def label_codes(labels: tuple[str, ...]) -> dict[str, str]:
    """A distinct one-character code per label (its first letter still free), used in the timeline."""
    codes: dict[str, str] = {}
    for label in labels:
        free = [c for c in label.lower() + "0123456789" if c.isalnum() and c not in codes.values()]
        codes[label] = free[0] if free else "?"
    return codes


def timeline_cells(timeline: tuple[tuple[float, float, str], ...], now_s: float, cells: int) -> list[str | None]:
    """The label covering most of each of ``cells`` equal slots of the last ``TIMELINE_S``; None is silence."""
    width, origin = TIMELINE_S / cells, now_s - TIMELINE_S
    out: list[str | None] = [None] * cells
    best = [0.0] * cells
    for start, end, label in timeline:
        for i in range(max(0, int((start - origin) / width)), min(cells, int((end - origin) / width) + 1)):
            overlap = min(end, origin + (i + 1) * width) - max(start, origin + i * width)
            if overlap > best[i]:
                best[i], out[i] = overlap, label
    return out


@dataclass(frozen=True)
class Fit:
    """Lines drawn for exactly the width available: ``draw(width)`` returns them (no measuring pass)."""

    draw: Callable[[int], list[Text]]

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(1, options.max_width)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield from self.draw(options.max_width)


@dataclass(frozen=True)
class SideBySide:
    """Two renderables next to each other, the left one taking ``share`` of the width."""

    left: RenderableType
    right: RenderableType
    share: float

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = int(options.max_width * self.share)
        left = console.render_lines(self.left, options.update(width=width, height=None), pad=True)
        right = console.render_lines(self.right, options.update(width=options.max_width - width, height=None), pad=True)
        blank = [Segment(" " * width)], [Segment(" " * (options.max_width - width))]
        for i in range(max(len(left), len(right))):
            yield from left[i] if i < len(left) else blank[0]
            yield from right[i] if i < len(right) else blank[1]
            yield Segment.line()


def runs(cells: list[tuple[str, str]]) -> Text:
    """One line of ``(character, style)`` cells, each run of equal style as a single span."""
    text = Text(no_wrap=True)
    for style, run in groupby(cells, key=itemgetter(1)):
        text.append("".join(char for char, _ in run), style=style)
    return text


def meter(width: int, fraction: float, style: str, rest: str = "·", rest_style: str = "dim",
          marker: float | None = None, marker_style: str = "bold") -> Text:
    """A bar ``width`` cells long, ``fraction`` of it filled, with an optional ``marker`` tick.

    The unfilled part is drawn with ``rest`` so the bar still reads without colour.
    """
    full, part = divmod(round(min(max(fraction, 0.0), 1.0) * width * 8), 8)
    cells = [("█", style)] * full + ([(EIGHTHS[part], style)] if part else [])
    cells += [(rest, rest_style)] * (width - len(cells))
    if marker is not None and width > 0:
        cells[max(0, min(int(marker * width), width - 1))] = ("┃", marker_style)
    return runs(cells)


def spread(width: int, left: Text, right: Text) -> Text:
    """``left`` and ``right`` on one line of ``width``, ``left`` shortened if they do not fit."""
    room = width - right.cell_len - 1
    if left.cell_len > room:
        left = left.copy()
        left.truncate(max(room, 0), overflow="ellipsis")
    return Text.assemble(left, " " * max(width - left.cell_len - right.cell_len, 1), right, no_wrap=True)


def probability(p: float | None) -> str:
    """Two decimals, or a dash before the first window."""
    return "   –" if p is None else f"{p:.2f}"


def clock(seconds: float) -> str:
    """``m:ss``, or ``h:mm:ss`` from the first hour."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def header(s: Snapshot) -> Panel:
    """Source and position, sample rate, elapsed time; the model and its labels."""
    position = f"{s.position_s:.1f} / {s.duration_s:.1f} s" if s.duration_s else f"{s.position_s:.1f} s"
    when = Text(f"elapsed {clock(s.elapsed_s)}")
    model = Text.assemble("model ", (s.model, "bold"), ": ", (" ".join(s.labels), "dim"))
    top = Fit(lambda width: [spread(width, source_line(s.source, position, s.sample_rate, width - when.cell_len - 2),
                                    when)])
    return Panel(Group(top, model), title="[bold]ser[/] speech emotion", title_align="left", subtitle="q quits",
                 subtitle_align="right")


def source_line(source: str, position: str, sample_rate: int, width: int) -> Text:
    """The source, position and rate in ``width`` cells: a long source name is shortened first, so the
    position stays in view."""
    rest = f"  {position}  {sample_rate / 1000:g} kHz"
    name = Text(source, "bold")
    if name.cell_len + len(rest) > width:
        name.truncate(max(width - len(rest), 1), overflow="ellipsis")
    return Text.assemble(name, rest)


def emotion_lines(s: Snapshot, width: int) -> list[Text]:
    """One line per label: code, name, rolling bar and value, latest value (faint); the leading one bold."""
    codes, name_width = label_codes(s.labels), max(map(len, s.labels))
    lines = []
    for label in s.labels:
        colour, leading = label_colour(s.labels, label), label == s.leading
        smoothed, bar_style = s.emotion_smoothed.get(label), f"bold {colour}" if leading else colour
        line = Text.assemble((codes[label], f"bold black on {colour}"), " ",
                             (label.ljust(name_width), f"bold reverse {colour}" if leading else colour), " ",
                             no_wrap=True)
        line.append_text(meter(max(width - name_width - 13, 1), smoothed or 0.0, bar_style))
        line.append(f" {probability(smoothed)}", style="bold" if leading else "")
        line.append(f" {probability(s.emotion_latest.get(label))}", style="dim")
        lines.append(line)
    return lines


def emotion_panel(s: Snapshot, height: int) -> Panel:
    """The emotion bars, titled with the leading emotion."""
    title = Text.assemble("emotion ", ("rolling · latest", "dim"))
    if s.leading is not None:
        title.append("  ").append(f" {s.leading.upper()} ", style=f"bold reverse {label_colour(s.labels, s.leading)}")
    return Panel(Fit(lambda width: emotion_lines(s, width)), title=title, title_align="left", height=height)


def gender_lines(s: Snapshot, width: int) -> list[Text]:
    """Both probabilities and a split bar, the first label filling from the left."""
    (left, right), colours = s.gender_labels[:2], GENDER_COLOURS
    names = spread(width, Text(f"{left} {probability(s.gender_smoothed.get(left))}", style=f"bold {colours[0]}"),
                   Text(f"{probability(s.gender_smoothed.get(right))} {right}", style=f"bold {colours[1]}"))
    if not s.gender_smoothed:
        return [names, meter(width, 0.0, "")]
    return [names, meter(width, s.gender_smoothed.get(left, 0.0), colours[0], rest="░", rest_style=colours[1])]


def activity_lines(s: Snapshot, width: int) -> list[Text]:
    """VAD state and window length, the input level meter with its peak hold, a clipping warning."""
    vad = Text(" SPEECH ", style="bold reverse green") if s.in_speech else Text(" listening ", style="dim")
    window = f"window {s.window_s:.1f} s" if s.in_speech else "window –"
    span = -LEVEL_FLOOR_DBFS
    colour = "red" if s.level_dbfs > -6 else "yellow" if s.level_dbfs > -20 else "green"
    lines = [Text.assemble(vad, "  ", window), meter(width, (s.level_dbfs + span) / span, colour,
                                                     marker=(s.peak_dbfs + span) / span,
                                                     marker_style="bold red" if s.clipping else "bold"),
             Text(f"level {round(s.level_dbfs)} dBFS  peak {round(s.peak_dbfs)}")]
    if s.clipping:
        lines.append(Text(" CLIPPING: lower the gain ", style="bold reverse red"))
    return lines


def timeline_lines(s: Snapshot, width: int) -> list[Text]:
    """The last minute, one cell per ``TIMELINE_S / width`` seconds, over a time axis."""
    codes = label_codes(s.labels)
    strip = runs([(codes[label], f"bold black on {label_colour(s.labels, label)}") if label else (" ", "")
                  for label in timeline_cells(s.timeline, s.position_s, width)])
    axis = [" "] * width
    for text, at in ((f"-{TIMELINE_S:.0f} s", 0), (f"-{TIMELINE_S / 2:.0f} s", width // 2 - 2), ("now", width - 3)):
        axis[max(at, 0):max(at, 0) + len(text)] = text
    return [strip, Text("".join(axis[:width]), style="dim", no_wrap=True)]


def footer_lines(s: Snapshot, width: int) -> list[Text]:
    """Counters: scored updates, latency, real-time factor, losses (red when non-zero), a live source's lag
    (yellow from a second), adaptation; on as many lines as ``width`` needs, each broken between counters."""
    def ms(value: float | None) -> str:
        return "–" if value is None else f"{value:.1f}"

    def plural(n: int, noun: str) -> str:
        return f"{n} {noun}{'' if n == 1 else 's'}"

    def behind(seconds: float) -> Text:
        return Text(f"behind {seconds:.1f} s", style="bold reverse yellow" if seconds >= BEHIND_SHOWN_S else "")

    rtf = "–" if s.realtime_factor is None else f"{s.realtime_factor:.3f}"
    counters = [Text(plural(s.windows, "update")),
                Text(f"latency p50/p95 {ms(s.latency_p50_ms)}/{ms(s.latency_p95_ms)} ms"), Text(f"RTF {rtf}"),
                *(Text(f"{name} {value}", style="bold reverse red" if value else "")
                  for name, value in (("dropped", s.dropped_blocks), ("overflows", s.overflows))),
                *([] if s.behind_s is None else [behind(s.behind_s)]),
                Text(f"adapted {plural(s.adapted_windows, 'window')}" if s.adapting else "adaptation off")]
    lines = [Text(" ")]
    for counter in counters:
        if len(lines[-1]) > 1 and len(lines[-1]) + 3 + len(counter) > width:
            lines.append(Text(" "))
        lines[-1].append_text(Text.assemble(" · " if len(lines[-1]) > 1 else "", counter))
    return lines


@dataclass(frozen=True)
class Frame:
    """One dashboard frame, a pure function of the snapshot and the terminal's size.

    While the run goes on (``fit``), a terminal too short for all of it loses the timeline first, then
    the header, so that the counters (the dropped blocks among them) stay in view. The last frame,
    left in the scrollback, is whole.
    """

    s: Snapshot
    fit: bool = True

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        s, height = self.s, max(len(self.s.labels) + 2, GAUGE_ROWS + 5)
        gauges = Group(Panel(Fit(lambda width: gender_lines(s, width)), title="gender [dim]rolling[/]",
                             title_align="left", height=GAUGE_ROWS),
                       Panel(Fit(lambda width: activity_lines(s, width)), title="activity", title_align="left",
                             height=height - GAUGE_ROWS))
        timeline = Panel(Fit(lambda width: timeline_lines(s, width)),
                         title=f"timeline [dim]last {TIMELINE_S:.0f} s, silence blank[/]", title_align="left")
        parts = {"header": header(s), "middle": SideBySide(emotion_panel(s, height), gauges, share=0.6),
                 "timeline": timeline, "footer": Fit(lambda width: footer_lines(s, width))}
        lines = {name: console.render_lines(part, options.update(height=None), pad=False)
                 for name, part in parts.items()}
        for expendable in ("timeline", "header"):
            if self.fit and sum(map(len, lines.values())) > options.max_height:
                del lines[expendable]
        for part in lines.values():
            for line in part:
                yield from line
                yield Segment.line()


def shares_terminal(stdout: IO[str] | None, console: Console) -> bool:
    """Whether standard output is the very terminal the dashboard draws on (not merely a terminal: stderr may
    go to a file while stdout stays on the screen)."""
    try:
        return (stdout is not None and stdout.isatty() and console.is_terminal
                and os.path.sameopenfile(stdout.fileno(), console.file.fileno()))
    except (AttributeError, OSError, ValueError):    # a stream without a descriptor (captured, closed)
        return False


class AboveDashboard:
    """Standard output while the dashboard shares its terminal: each line is printed above the frame whole.

    Rich's own redirect breaks lines at the terminal's width, so a JSON line copied from the screen
    would not parse.
    """

    def __init__(self, console: Console) -> None:
        self._console = console
        self._partial = ""

    def write(self, text: str) -> int:
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            self._console.print(Text(line), soft_wrap=True)
        return len(text)

    def flush(self) -> None:
        """Lines go out whole as they end; nothing is held but a line still being written."""


class Dashboard:
    """Keeps the :class:`Frame` of the latest snapshot on the terminal (stderr) while a run goes on.

    The pipeline thread calls :meth:`poll` after every chunk: at most :data:`REFRESH_HZ` times
    a second it publishes a fresh snapshot (a reference swap, no lock) and it returns
    whether ``q`` was pressed. Rich draws on its own thread, so the pipeline never
    blocks on the screen. JSON Lines on a piped stdout are left untouched; only when
    stdout is this terminal too is it routed above the dashboard.
    """

    def __init__(self, monitor: Monitor, stats: SourceStats, on_quit: Callable[[], None] = lambda: None) -> None:
        self._monitor, self._stats = monitor, stats
        self._console = Console(stderr=True, highlight=False)
        self._published = time.monotonic()
        self._snapshot, self._last = monitor.snapshot(stats), False
        self._keys = KeyReader(sys.stdin, on_quit, on_suspend=lambda: self._console.show_cursor(True),
                               on_resume=lambda: self._console.show_cursor(False))   # as Live hides it
        self._live = Live(get_renderable=lambda: Frame(self._snapshot, fit=not self._last), console=self._console,
                          refresh_per_second=REFRESH_HZ, redirect_stdout=False)
        self._stdout = AboveDashboard(self._console) if shares_terminal(sys.stdout, self._console) else None
        self._stack = ExitStack()

    def poll(self) -> bool:
        """Publish a snapshot if one is due; True once the user asked to quit."""
        now = time.monotonic()
        if now - self._published >= 1.0 / REFRESH_HZ:
            self._published, self._snapshot = now, self._monitor.snapshot(self._stats)
        return self._keys.quit.is_set()

    def __enter__(self) -> Dashboard:
        with ExitStack() as stack:
            stack.enter_context(self._keys)
            stack.enter_context(self._live)
            if self._stdout is not None:
                stack.enter_context(redirect_stdout(self._stdout))
            self._stack = stack.pop_all()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._snapshot = self._monitor.snapshot(self._stats)      # the final frame includes the flushed window
        self._last = True
        self._stack.__exit__(kind, exc, tb)
        if not self._console.is_terminal:      # rich ends the last frame with a newline only on a terminal
            self._console.line()
