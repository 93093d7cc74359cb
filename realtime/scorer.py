"""ONNX scoring with a validated model card (``NAME.onnx`` beside ``NAME.json``)."""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from realtime.adapt import AdaptConfig
from realtime.channel import pass_band
from realtime.features import FeatureSpec, computable
from realtime.vad import VadConfig

CARD_FORMAT = 1
INPUT_NAME = "features"
FRAMES_INPUT = "frames"
EMOTION_OUTPUT = "emotion_probabilities"
GENDER_OUTPUT = "gender_probabilities"


def _shipped_models() -> Path:
    """The installed package ``realtime.models``, or ``models/`` beside a source tree's ``realtime/`` (run from a clone
    that was installed without ``-e``, the clone's ``realtime`` shadows the installed one, which alone maps it)."""
    try:
        return Path(str(resources.files("realtime.models")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[1] / "models"


SHIPPED_MODELS = _shipped_models()
DEFAULT_MODEL = SHIPPED_MODELS / "ser-ravdess.onnx"
TELEPHONE_RATE_HZ = 8000   # the rate the telephone models learned from
NARROWBAND_HINT = "for telephone audio use --model ser-ravdess-phone, or ser-ravdess-phone-noisy in noise (see the README)"
RETRAIN_HINT = "retrain it with `ser-train fit` or pass a matching --model"


def onnx_digest(graph: bytes) -> str:
    """The SHA-256 of a serialised ONNX graph, which its card records so that the two stay paired."""
    return hashlib.sha256(graph).hexdigest()


def model_path(text: str) -> Path:
    """A model file, or the name of a shipped model (``ser-ravdess``, ``ser-ravdess-noisy``, ``ser-ravdess-phone``,
    ``ser-ravdess-phone-noisy``, ``ser-ravdess-8k``)."""
    path, shipped = Path(text), SHIPPED_MODELS / f"{text}.onnx"
    return shipped if not path.exists() and shipped.exists() else path


def onnx_file(path: Path) -> Path:
    """The model file ``path`` names: itself (.onnx), the model beside a .json card, or else ``path`` plus
    .onnx (a path without suffix: ``models/model-v1.5`` keeps its ``.5``)."""
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return path
    return path.with_suffix(".onnx") if suffix == ".json" else path.with_name(path.name + ".onnx")


class ModelError(ValueError):
    """A model or card that cannot be used; the message says what to do."""


@dataclass(frozen=True)
class ModelCard:
    """The parts of the card the runtime needs; ``raw`` keeps the whole JSON."""

    name: str
    labels: list[str]
    gender_labels: list[str]
    spec: FeatureSpec
    pop_mean: np.ndarray
    pop_std: np.ndarray
    adapt: AdaptConfig
    gender_trained: bool
    raw: dict
    trained_on_rate_hz: int       # the training audio's highest sample rate, capped at the model rate
    band_hz: tuple[float, float] | None = None   # the pass band all audio is heard through (telephone models)
    frame_pop_mean: np.ndarray | None = None   # frame-model members only: the frame columns' population
    frame_pop_std: np.ndarray | None = None
    vad: VadConfig = VadConfig()   # the VAD its training windows were cut with (cards before the field: the default)

    @property
    def uses_frames(self) -> bool:
        """Whether the graph also scores the window's frames (a frame-level ensemble member)."""
        return self.frame_pop_mean is not None

    @property
    def band_rate_hz(self) -> int | None:
        """The rate wider input passes through before scoring, when all the model's training audio was narrower."""
        return self.trained_on_rate_hz if self.trained_on_rate_hz < self.spec.sample_rate else None

    def narrower_input(self, native_rate: int) -> str | None:
        """Why audio recorded at ``native_rate`` is out of this model's reach (telephone audio), or None."""
        if native_rate >= self.trained_on_rate_hz:
            return None
        hint = f"; {NARROWBAND_HINT}" if self.trained_on_rate_hz > TELEPHONE_RATE_HZ else ""  # not for a phone model
        return (f"the input is recorded at {native_rate} Hz, but model {self.name} learned from audio at "
                f"{self.trained_on_rate_hz} Hz: it hears nothing above {native_rate // 2} Hz and its published "
                f"figures may not hold{hint}")

    @classmethod
    def load(cls, path: Path) -> "ModelCard":
        """Read and validate a card; its feature spec must be one this runtime computes."""
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            raise ModelError(f"model card {path} is missing; {RETRAIN_HINT}") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelError(f"model card {path} is unreadable ({exc}); {RETRAIN_HINT}") from None
        if not isinstance(raw, dict):
            raise ModelError(f"model card {path} is not a JSON object; {RETRAIN_HINT}")
        try:
            if raw.get("format") != CARD_FORMAT:
                raise ModelError(f"model card {path} has format {raw.get('format')!r}, expected {CARD_FORMAT}")
            spec_dict = dict(raw["feature_spec"])
            unknown = sorted(set(spec_dict) - {f.name for f in fields(FeatureSpec)})
            if unknown:
                raise ModelError(f"model card {path} lists feature settings this runtime does not know "
                                 f"({', '.join(unknown)}): a newer ser-train wrote it; upgrade ser, or {RETRAIN_HINT}")
            spec_dict["percentiles"] = tuple(spec_dict["percentiles"])
            spec = FeatureSpec(**spec_dict)
            adaptation = raw["adaptation"]
            variance_prior = adaptation.get("variance_prior_windows")   # cards before it: the prior's own weight
            card = cls(name=raw["name"], labels=list(raw["labels"]), gender_labels=list(raw["gender_labels"]),
                       spec=spec, pop_mean=np.asarray(adaptation["pop_mean"], dtype=np.float64),
                       pop_std=np.asarray(adaptation["pop_std"], dtype=np.float64),
                       adapt=AdaptConfig(prior_windows=float(adaptation["prior_windows"]),
                                         forgetting=float(adaptation["forgetting"]),
                                         variance_prior_windows=None if variance_prior is None else float(variance_prior)),
                       gender_trained=bool(raw.get("gender_trained", True)), raw=raw,
                       trained_on_rate_hz=int(raw.get("trained_on_rate_hz", spec.sample_rate)),
                       band_hz=_band(raw.get("band_hz"), spec.sample_rate), vad=VadConfig(**raw.get("vad", {})),
                       **_frame_stats(raw.get("frame_model")))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ModelError):
                raise
            raise ModelError(f"model card {path} is malformed ({exc!r}); {RETRAIN_HINT}") from None
        if not computable(spec):
            raise ModelError(f"model {path.stem} was trained with feature spec {raw.get('feature_spec_hash')} "
                             f"(version {spec.version}), which this runtime does not compute; {RETRAIN_HINT}")
        if raw.get("feature_spec_hash") != spec.hash():
            raise ModelError(f"model card {path} is inconsistent: its feature_spec_hash "
                             f"{raw.get('feature_spec_hash')!r} is not the digest of its feature_spec "
                             f"({spec.hash()}), so it was edited or damaged; {RETRAIN_HINT}")
        columns = len(spec.frame_names)
        if (len(card.pop_mean) != spec.dim or len(card.pop_std) != spec.dim
                or card.uses_frames and (len(card.frame_pop_mean) != columns or len(card.frame_pop_std) != columns)):
            raise ModelError(f"model card {path} has adaptation statistics of the wrong size; {RETRAIN_HINT}")
        return card


def _band(value: list | None, sample_rate: int) -> tuple[float, float] | None:
    """The card's ``band_hz`` entry as (low, high) Hz, or None for a wideband model."""
    if value is None:
        return None
    low, high = value
    return pass_band(low, high, sample_rate)


def _frame_stats(frame_model: dict | None) -> dict:
    """The frame member's population statistics from the card's ``frame_model`` entry, if any."""
    if frame_model is None:
        return {}
    return {"frame_pop_mean": np.asarray(frame_model["pop_mean"], dtype=np.float64),
            "frame_pop_std": np.asarray(frame_model["pop_std"], dtype=np.float64)}


class Scorer:
    """Emotion and gender probabilities for normalised window vectors (and frames, for frame ensembles).

    Parameters
    ----------
    model_path : Path
        The ``.onnx`` file, its ``.json`` card, or their path without the suffix (see :func:`onnx_file`).
        The card fixes the feature spec the runtime computes for it.
    """

    def __init__(self, model_path: Path) -> None:
        import onnxruntime as ort

        model_path = Path(model_path)
        if not model_path.name:
            raise ModelError("--model names no file; pass a model .onnx or a shipped model's name")
        if model_path.exists() and (model_path.is_dir() or model_path.suffix.lower() not in (".onnx", ".json")):
            raise ModelError(f"--model {model_path} is not a model; pass a model .onnx (its .json card beside it) "
                             f"or a shipped model's name")
        model_path = onnx_file(model_path)
        if not model_path.is_file():
            if model_path.parent == Path("."):   # a bare name: most likely a mistyped shipped one
                shipped = ", ".join(sorted(path.stem for path in SHIPPED_MODELS.glob("*.onnx")))
                raise ModelError(f"no model file {model_path} here, and no shipped model named {model_path.stem} "
                                 f"(shipped: {shipped})")
            raise ModelError(f"model file {model_path} not found; {RETRAIN_HINT}")
        self.path, self.card_path = model_path, model_path.with_suffix(".json")
        self.card = ModelCard.load(self.card_path)
        try:
            graph = model_path.read_bytes()
        except OSError as exc:
            raise ModelError(f"model file {model_path} is unreadable ({exc.strerror or exc})") from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises several private exception types
            raise ModelError(f"model file {model_path} could not be loaded ({type(exc).__name__}); "
                             f"{RETRAIN_HINT}") from None
        recorded = self.card.raw.get("onnx_sha256")    # cards written before it carry none
        if recorded is not None and recorded != onnx_digest(graph):
            raise ModelError(f"model {model_path} is not the graph its card {self.card_path.name} was written with "
                             f"(their checksums differ: another model's graph, or a damaged copy); keep each .onnx "
                             f"beside its own .json, or {RETRAIN_HINT}")
        self._check_graph(model_path)

    def _check_graph(self, model_path: Path) -> None:
        inputs = {i.name: i.shape for i in self._session.get_inputs()}
        outputs = {o.name for o in self._session.get_outputs()}
        dim = 2 * self.card.spec.dim
        if INPUT_NAME not in inputs or inputs[INPUT_NAME][-1] not in (dim, None, "None"):
            raise ModelError(f"model {model_path} does not take a '{INPUT_NAME}' input of width {dim}; "
                             f"{RETRAIN_HINT}")
        if not {EMOTION_OUTPUT, GENDER_OUTPUT} <= outputs:
            raise ModelError(f"model {model_path} lacks outputs {EMOTION_OUTPUT}/{GENDER_OUTPUT}; {RETRAIN_HINT}")
        channels = 2 * len(self.card.spec.frame_names)
        if (FRAMES_INPUT in inputs) != self.card.uses_frames or (
                self.card.uses_frames and inputs[FRAMES_INPUT][-1] not in (channels, None, "None")):
            raise ModelError(f"model {model_path} and its card disagree about the '{FRAMES_INPUT}' input "
                             f"(width {channels}); {RETRAIN_HINT}")
        frames = np.zeros((1, 1, channels), dtype=np.float32) if self.card.uses_frames else None
        emotion, gender = self.score(np.zeros((1, dim), dtype=np.float32), frames)
        if emotion.shape[1] != len(self.card.labels) or gender.shape[1] != len(self.card.gender_labels):
            raise ModelError(f"model {model_path} outputs {emotion.shape[1]} emotions and {gender.shape[1]} genders "
                             f"but its card lists {len(self.card.labels)} and {len(self.card.gender_labels)}; "
                             f"{RETRAIN_HINT}")

    def score(self, x: np.ndarray, frames: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Emotion ``(n, n_labels)`` and gender ``(n, 2)`` probabilities for model inputs ``(n, 2 * spec.dim)``.

        A frame ensemble scores one window at a time (n = 1) and also needs its
        normalised frames ``(1, n_frames, 2 * n_frame_columns)``.
        """
        feeds = {INPUT_NAME: x.astype(np.float32)}
        if self.card.uses_frames:
            if frames is None:
                raise ValueError(f"model {self.card.name} scores frames too; pass them")
            feeds[FRAMES_INPUT] = frames.astype(np.float32)
        emotion, gender = self._session.run([EMOTION_OUTPUT, GENDER_OUTPUT], feeds)
        return np.asarray(emotion, dtype=np.float64), np.asarray(gender, dtype=np.float64)
