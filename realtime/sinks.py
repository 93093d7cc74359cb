"""Event sinks: JSON Lines to a file or stdout."""

from __future__ import annotations

import json
import os
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


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one existing file."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


class JsonlSink:
    """One JSON object per line to a path or ``-`` (stdout), flushed per event; ``inputs`` (the audio, the
    model and its card) are never overwritten."""

    def __init__(self, target: str, inputs: tuple[Path, ...] = ()) -> None:
        self._file: IO[str] | None = None
        if not target:
            raise ValueError("--jsonl needs a file path, or - for standard output")
        if target == "-":
            if sys.stdout is None:
                raise ValueError("--jsonl -: standard output is closed")
        else:
            path = Path(target)
            clash = next((p for p in inputs if same_file(path, p)), None)
            if clash is not None:
                raise ValueError(f"--jsonl {path} would overwrite {clash}, an input of this run; choose another path")
            try:
                self._file = path.open("w", encoding="utf-8")
            except OSError as exc:
                raise ValueError(f"cannot write JSONL to {path}: {exc.strerror}") from None

    def write(self, record: dict) -> None:
        # stdout is looked up per write: a dashboard on the same terminal routes it above itself
        stream = self._file or sys.stdout
        try:
            stream.write(json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n")   # strict JSON
            stream.flush()
        except OSError as exc:
            if self._file is None:
                raise                    # stdout: a closed pipe ends the run quietly
            raise self._named(exc) from None

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError as exc:       # what a failed write left in the buffer fails again
                raise self._named(exc) from None

    def _named(self, exc: OSError) -> OSError:
        """``exc`` with the JSONL path, which a failed write or flush does not carry."""
        return OSError(exc.errno, f"cannot write JSONL ({exc.strerror})", self._file.name)
