"""Window tables and the speaker-session simulation that training shares with evaluation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from realtime.adapt import AdaptConfig, SpeakerAdapter, normalize_session
from ser_train.dataset import ClipWindows

GENDERS = ("female", "male")


@dataclass(frozen=True)
class WindowTable:
    """One row per segment window: raw vector ``x`` ``(n, dim)``, its frames and its clip's metadata."""

    x: np.ndarray
    frames: np.ndarray       # object array: each row's frames (n_frames, n_frame_columns)
    label: np.ndarray        # index into ``labels``
    gender: np.ndarray       # index into GENDERS, -1 when unknown
    speaker: np.ndarray      # corpus-qualified speaker id: the unit of every CV split
    session: np.ndarray      # speaker and voice factor: a perturbed copy is its own adaptation session
    factor: np.ndarray       # 1.0 for real audio
    clip: np.ndarray         # index of the (clip, factor) the window came from
    duration_s: np.ndarray
    labels: tuple[str, ...]

    def subset(self, rows: np.ndarray) -> "WindowTable":
        return WindowTable(self.x[rows], self.frames[rows], self.label[rows], self.gender[rows], self.speaker[rows],
                           self.session[rows], self.factor[rows], self.clip[rows], self.duration_s[rows], self.labels)


def window_table(clips: list[ClipWindows], labels: tuple[str, ...], every_label: bool = True) -> WindowTable:
    """Flatten clips into window rows, keeping only clips whose label is in ``labels``. A ValueError says when
    no clip holds a window of speech, or (with ``every_label``: the emotion head learns them all) names the
    labels none of whose clips does."""
    keep = [(i, c) for i, c in enumerate(clips) if c.clip.label in labels and len(c.durations_s)]
    heard = {c.clip.label for _, c in keep}
    silent = [label for label in labels if label not in heard]
    if len(silent) == len(labels):
        raise ValueError("no clip holds speech that the VAD finds: check the recordings' level (is it silence?)")
    if silent and every_label:
        raise ValueError(f"no clip labelled {', '.join(silent)} holds speech that the VAD finds, so the model could "
                         f"not learn {'it' if len(silent) == 1 else 'them'}: check those recordings, or leave "
                         f"{'it' if len(silent) == 1 else 'them'} out with --emotions")
    counts = [len(c.durations_s) for _, c in keep]
    gender_index = {g: i for i, g in enumerate(GENDERS)}
    frames = np.empty(sum(counts), dtype=object)
    for row, window_frames in enumerate(f for _, c in keep for f in c.frames):
        frames[row] = window_frames
    return WindowTable(
        x=np.vstack([c.vectors for _, c in keep]), frames=frames,
        label=np.repeat([labels.index(c.clip.label) for _, c in keep], counts),
        gender=np.repeat([gender_index.get(c.clip.gender, -1) for _, c in keep], counts),
        speaker=np.repeat([c.clip.speaker for _, c in keep], counts),
        session=np.repeat([f"{c.clip.speaker}@{c.factor:g}" for _, c in keep], counts),
        factor=np.repeat([c.factor for _, c in keep], counts),
        clip=np.repeat([i for i, _ in keep], counts),
        duration_s=np.concatenate([c.durations_s for _, c in keep]), labels=labels)


def population_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of raw window vectors (the adapter's prior)."""
    return x.mean(axis=0), np.maximum(x.std(axis=0), 1e-6)


def speaker_orders(table: WindowTable, seed: int) -> list[np.ndarray]:
    """Per session, its window rows with clips in a seeded random order (windows of a clip stay in order)."""
    rng = np.random.default_rng(seed)
    orders = []
    for session in sorted(set(table.session.tolist())):
        rows = np.flatnonzero(table.session == session)
        clips = np.unique(table.clip[rows])
        rng.shuffle(clips)
        orders.append(np.concatenate([rows[table.clip[rows] == c] for c in clips]))
    return orders


def sessions_of(table: WindowTable, mode: str, seed: int = 0) -> list[np.ndarray]:
    """Window rows per adaptation session, in the order the runtime would see them.

    ``mode`` is ``adapt`` (one session per speaker and voice factor, clips in a seeded random order)
    or ``cold`` (state reset before every clip).
    """
    if mode == "adapt":
        return speaker_orders(table, seed)
    if mode == "cold":
        return [np.flatnonzero(table.clip == c) for c in np.unique(table.clip)]
    raise ValueError(f"mode must be 'adapt' or 'cold', got {mode!r}")


def normalized_inputs(table: WindowTable, windows: np.ndarray, adapter: SpeakerAdapter, mode: str,
                      seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """Normalise each row's window (``table.x`` or ``table.frames``) as the runtime would; return ``(inputs, rows)``.

    Sessions and their order follow :func:`sessions_of`.
    """
    sessions = sessions_of(table, mode, seed)
    return [z for r in sessions for z in normalize_session(windows[r], adapter)], np.concatenate(sessions)


def normalized(table: WindowTable, adapter: SpeakerAdapter, mode: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Window vectors normalised as the runtime would, stacked: ``(z, rows)``."""
    inputs, rows = normalized_inputs(table, table.x, adapter, mode, seed)
    return np.vstack(inputs), rows


def simulated_sessions(table: WindowTable, windows: np.ndarray, adapter: SpeakerAdapter, n_orders: int,
                       seed: int) -> list[tuple[list[np.ndarray], np.ndarray]]:
    """:func:`normalized_inputs` under ``n_orders`` seeded session orders, then cold: training as served."""
    parts = [normalized_inputs(table, windows, adapter, "adapt", seed + k) for k in range(n_orders)]
    return parts + [normalized_inputs(table, windows, adapter, "cold")]


def training_rows(table: WindowTable, config: AdaptConfig, n_orders: int, seed: int) -> tuple[np.ndarray, np.ndarray, SpeakerAdapter]:
    """Training inputs as served: several simulated session orders plus cold windows."""
    adapter = SpeakerAdapter(*population_stats(table.x), config)
    parts = simulated_sessions(table, table.x, adapter, n_orders, seed)
    return np.vstack([z for inputs, _ in parts for z in inputs]), np.concatenate([r for _, r in parts]), adapter
