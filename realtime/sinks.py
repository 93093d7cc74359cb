"""Event sinks: JSON Lines and a compact per-event table."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import IO, Protocol

from realtime.pipeline import Event

SCHEMA_VERSION = 1


class Sink(Protocol):
    def write(self, record: dict) -> None: ...
    def close(self) -> None: ...


def event_record(event: Event, sample_rate: int) -> dict:
    """The JSON form of an event (schema :data:`SCHEMA_VERSION`, documented in the README)."""
    scored = event.type != "speech_start"
    return {"schema": SCHEMA_VERSION, "type": event.type,
            "start_s": round(event.start / sample_rate, 3), "end_s": round(event.end / sample_rate, 3),
            "emotion": event.emotion, "emotion_probs": event.emotion_probs,
            "gender": event.gender, "gender_probs": event.gender_probs,
            "smoothed_emotion": event.smoothed_emotion,
            "latency_ms": round(event.latency_ms, 3) if scored else None,
            "adapted_windows": event.adapted_windows}


class JsonlSink:
    """One JSON object per line to a path or ``-`` (stdout), flushed per event."""

    def __init__(self, target: str) -> None:
        if target == "-":
            self._stream: IO[str] = sys.stdout
            self._owned = False
        else:
            path = Path(target)
            try:
                self._stream = path.open("w", encoding="utf-8")
            except OSError as exc:
                raise ValueError(f"cannot write JSONL to {path}: {exc.strerror}") from None
            self._owned = True

    def write(self, record: dict) -> None:
        self._stream.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._stream.flush()

    def close(self) -> None:
        if self._owned:
            self._stream.close()


class TableSink:
    """Prints one compact rich line per scored event (the non-dashboard console view)."""

    def __init__(self) -> None:
        from rich.console import Console

        self._console = Console(stderr=True, highlight=False)

    def write(self, record: dict) -> None:
        if record["type"] not in ("segment", "partial"):
            return
        top = sorted(record["emotion_probs"].items(), key=lambda kv: -kv[1])[:3]
        probs = "  ".join(f"{k} {v:.2f}" for k, v in top)
        style = "bold" if record["type"] == "segment" else "dim"
        self._console.print(f"[{style}]{record['type']:8s}[/] {record['start_s']:7.2f}-{record['end_s']:7.2f} s  "
                            f"[bold]{record['emotion']:9s}[/] {probs}   {record['gender']} "
                            f"({max(record['gender_probs'].values()):.2f})")

    def close(self) -> None:
        pass
