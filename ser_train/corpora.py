"""Scan emotional-speech corpora by file name into labelled, speaker-tagged clips.

Only names are parsed; audio is never opened, so any sample rate or format
(``.wav``/``.flac``, any case) is fine. The only files read are CREMA-D's
``VideoDemographics.csv`` and the folder loader's optional speakers CSV
(``speakers.csv`` at its root, or given). Linked folders are followed, each real folder once.
"""
from __future__ import annotations

import csv
import logging
import os
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path

logger = logging.getLogger(__name__)

LABELS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised", "boredom")
KINDS = ("ravdess", "tess", "emodb", "cremad", "savee", "folder")
AUDIO_SUFFIXES = frozenset({".wav", ".flac"})
CREMAD_DEMOGRAPHICS = "VideoDemographics.csv"
FOLDER_SPEAKERS = "speakers.csv"   # the folder loader's speakers CSV, when found at the corpus root
SPEAKER_CSV_KINDS = ("cremad", "folder")   # the kinds that read a CSV of speakers


class CorpusError(ValueError):
    """A corpus cannot be scanned at all (bad kind, root, CSV, or no audio)."""


@dataclass(frozen=True)
class Clip:
    """One labelled audio file; ``speaker`` is corpus-qualified, e.g. ``"ravdess:12"``."""
    path: Path
    label: str
    speaker: str
    gender: str | None
    corpus: str


@dataclass(frozen=True)
class CorpusScan:
    """Parsed clips (sorted by path) and ``(path, reason)`` for every unparsable audio file."""
    clips: tuple[Clip, ...]
    rejected: tuple[tuple[Path, str], ...]


class GuessedSpeakersError(CorpusError):
    """A folder corpus's speakers, taken from file names, each hold one label only: they are not speakers."""


class _Reject(Exception):
    """Internal: this file name cannot be parsed; the message is the reason."""


_Parsed = tuple[str, str, "str | None"]  # label, bare speaker id, gender

_RAVDESS_EMOTIONS = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad",
                     "05": "angry", "06": "fearful", "07": "disgust", "08": "surprised"}
_TWO = ("01", "02")
_RAVDESS_AUDIO = ("01", "03")   # full audio-video and audio-only; 02 is video-only, without sound
_RAVDESS_FIELDS: tuple[tuple[str, Collection[str]], ...] = (
    ("modality", _RAVDESS_AUDIO), ("vocal channel", _TWO), ("emotion", _RAVDESS_EMOTIONS),
    ("intensity", _TWO), ("statement", _TWO), ("repetition", _TWO),
    ("actor", tuple(f"{i:02d}" for i in range(1, 25))))
_TESS_EMOTIONS = {"angry": "angry", "disgust": "disgust", "fear": "fearful", "happy": "happy",
                  "neutral": "neutral", "sad": "sad", "ps": "surprised",
                  "pleasant_surprise": "surprised", "pleasant_surprised": "surprised"}
_EMODB_EMOTIONS = {"W": "angry", "L": "boredom", "E": "disgust", "A": "fearful",
                   "F": "happy", "T": "sad", "N": "neutral"}
_EMODB_GENDERS = {**dict.fromkeys(("03", "10", "11", "12", "15"), "male"),
                  **dict.fromkeys(("08", "09", "13", "14", "16"), "female")}
_EMODB_TEXTS = ("a01", "a02", "a04", "a05", "a07", "b01", "b02", "b03", "b09", "b10")
_CREMAD_EMOTIONS = {"ANG": "angry", "DIS": "disgust", "FEA": "fearful", "HAP": "happy",
                    "NEU": "neutral", "SAD": "sad"}
_CREMAD_LEVELS = ("LO", "MD", "HI", "XX", "X")
_SAVEE_EMOTIONS = {"a": "angry", "d": "disgust", "f": "fearful", "h": "happy",
                   "n": "neutral", "sa": "sad", "su": "surprised"}
_SAVEE_SPEAKERS = ("DC", "JE", "JK", "KL")
_FOLDER_SYNONYMS = {**{label: label for label in LABELS}, "anger": "angry", "happiness": "happy",
                    "sadness": "sad", "fear": "fearful", "surprise": "surprised",
                    "disgusted": "disgust", "bored": "boredom"}
_GENDERS = {"female": "female", "f": "female", "male": "male", "m": "male"}

_RAVDESS_RE = re.compile(r"(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)")
_TESS_RE = re.compile(r"([A-Za-z]+)_([^_]+)_(.+)")
_EMODB_RE = re.compile(r"(\d\d)([a-z]\d\d)([a-z])([a-z])", re.IGNORECASE)
_CREMAD_RE = re.compile(r"(\d{4})_([a-z]{3})_([a-z]+)_([a-z]+)", re.IGNORECASE)
_SAVEE_RE = re.compile(r"(?:([a-z]+)_)?(sa|su|[a-z])(\d+)", re.IGNORECASE)


def _match(pattern: re.Pattern[str], path: Path, example: str) -> tuple[str, ...]:
    """Return the groups of ``pattern`` fully matching the file stem, or reject it."""
    found = pattern.fullmatch(path.stem)
    if found is None:
        raise _Reject(f"name does not follow the pattern of {example!r}")
    return found.groups()


def _lookup(table: Collection[str], code: str, what: str) -> str:
    """Map ``code`` through ``table`` (a mapping, or a collection of allowed codes)."""
    if code not in table:
        codes = list(table)
        numeric = len(codes) > 10 and all(c.isdigit() for c in codes)
        allowed = f"{codes[0]}..{codes[-1]}" if numeric else "/".join(codes)
        raise _Reject(f"unknown {what} {code!r} (expected {allowed})")
    return table[code] if isinstance(table, Mapping) else code


def _ravdess(path: Path) -> _Parsed:
    fields = _match(_RAVDESS_RE, path, "03-01-05-01-02-01-12.wav")
    for (what, table), code in zip(_RAVDESS_FIELDS, fields):
        _lookup(table, code, f"RAVDESS {what}")
    actor = fields[6]
    return _RAVDESS_EMOTIONS[fields[2]], actor, "male" if int(actor) % 2 else "female"


def _tess(path: Path) -> _Parsed:
    speaker, _word, emotion = _match(_TESS_RE, path, "OAF_back_angry.wav")
    speaker = _lookup(("OAF", "YAF"), speaker.upper(), "TESS speaker")
    return _lookup(_TESS_EMOTIONS, emotion.lower(), "TESS emotion"), speaker, "female"


def _emodb(path: Path) -> _Parsed:
    speaker, text, emotion, _version = _match(_EMODB_RE, path, "03a01Fa.wav")
    gender = _lookup(_EMODB_GENDERS, speaker, "EMO-DB speaker")
    _lookup(_EMODB_TEXTS, text.lower(), "EMO-DB text code")
    return _lookup(_EMODB_EMOTIONS, emotion.upper(), "EMO-DB emotion letter"), speaker, gender


def _cremad(path: Path, *, genders: Mapping[str, str | None]) -> _Parsed:
    actor, _sentence, emotion, level = _match(_CREMAD_RE, path, "1001_DFA_ANG_XX.wav")
    _lookup(_CREMAD_LEVELS, level.upper(), "CREMA-D level")
    return _lookup(_CREMAD_EMOTIONS, emotion.upper(), "CREMA-D emotion"), actor, genders.get(actor)


def _savee(path: Path) -> _Parsed:
    prefix, emotion, _number = _match(_SAVEE_RE, path, "DC_a01.wav")
    what = "SAVEE speaker" if prefix else "SAVEE speaker folder (no DC_ style prefix)"
    speaker = _lookup(_SAVEE_SPEAKERS, (prefix or path.parent.name).upper(), what)
    return _lookup(_SAVEE_EMOTIONS, emotion.lower(), "SAVEE emotion code"), speaker, "male"


def _folder(path: Path, *, root: Path,
            speakers: Mapping[str, tuple[str, str | None]] | None) -> _Parsed:
    rel = path.relative_to(root)
    if len(rel.parts) < 2:
        raise _Reject("file is not inside a <label>/ folder")
    label = _lookup(_FOLDER_SYNONYMS, rel.parts[0].lower(), "label folder")
    if speakers is None:
        return label, re.split(r"[_-]", path.stem, maxsplit=1)[0] or path.stem, None
    entry = speakers.get(rel.as_posix()) or speakers.get(path.name)
    if entry is None:
        raise _Reject("not listed in the speakers CSV")
    return label, *entry


def _read_csv(path: Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    """Read a CSV into rows keyed by lower-cased column names; check ``required`` columns."""
    if not path.is_file():
        raise CorpusError(f"CSV file {path} does not exist")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = {name.strip().lower() for name in reader.fieldnames or ()}
            missing = [name for name in required if name not in header]
            if missing:
                raise CorpusError(f"CSV file {path} lacks column(s) {', '.join(missing)}")
            return [{k.strip().lower(): (v or "").strip() for k, v in row.items() if k is not None}
                    for row in reader]
    except UnicodeDecodeError as exc:
        raise CorpusError(f"CSV file {path} is not UTF-8 text ({exc.reason})") from None
    except csv.Error as exc:
        raise CorpusError(f"CSV file {path} cannot be read as CSV: {exc}") from None


def _cremad_genders(root: Path, csv_path: Path | None) -> dict[str, str | None]:
    """Actor id -> gender from ``VideoDemographics.csv`` (given, or found under ``root``)."""
    if csv_path is None:
        found = [p for p in walk_files(root) if p.name.lower() == CREMAD_DEMOGRAPHICS.lower() and p.is_file()]
        if not found:
            logger.info("no %s under %s: CREMA-D genders unknown", CREMAD_DEMOGRAPHICS, root)
            return {}
        csv_path = found[0]
    rows = _read_csv(csv_path, ("actorid", "sex"))
    genders = {row["actorid"]: _GENDERS.get(row["sex"].lower()) for row in rows}
    unknown = sorted(actor for actor, gender in genders.items() if gender is None)
    if unknown:
        logger.warning("%s: %d of %d actors have a Sex other than Male/Female (first: %s); their gender is unknown",
                       csv_path, len(unknown), len(genders), unknown[0] or "a row without ActorID")
    return genders


def _folder_speakers(root: Path, csv_path: Path | None) -> dict[str, tuple[str, str | None]] | None:
    """File key (relative posix path or bare name) -> (speaker, gender) from ``csv_path`` or ``root``'s
    ``speakers.csv``; None without either."""
    if csv_path is None and (root / FOLDER_SPEAKERS).is_file():
        csv_path = root / FOLDER_SPEAKERS
    if csv_path is None:
        return None
    table: dict[str, tuple[str, str | None]] = {}
    for line, row in enumerate(_read_csv(csv_path, ("file", "speaker")), start=2):
        gender = row.get("gender", "").lower()
        if not row["file"] or not row["speaker"] or (gender and gender not in _GENDERS):
            raise CorpusError(f"{csv_path}:{line}: need file and speaker, gender female/male/f/m")
        key = row["file"].replace("\\", "/").removeprefix("./")
        table[key] = (row["speaker"], _GENDERS.get(gender))
    return table


def walk_files(root: Path) -> list[Path]:
    """Every file name under ``root`` (links to nothing included), sorted; linked folders are followed,
    each real folder once (so a link loop ends)."""
    paths, seen = [], set()
    for folder, subfolders, names in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            subfolders[:] = []
            continue
        seen.add(real)
        paths += (Path(folder, name) for name in names)
    return sorted(paths)


def audio_files(root: Path) -> tuple[list[Path], list[Path]]:
    """The ``.wav``/``.flac`` files under ``root`` (see :func:`walk_files`), and the links among them that lead
    nowhere."""
    audio = [path for path in walk_files(root) if path.suffix.lower() in AUDIO_SUFFIXES]
    return [path for path in audio if path.is_file()], [path for path in audio if not path.is_file()]


def _guessed_speakers_problem(clips: list[Clip], root: Path) -> str | None:
    """Why the speakers a folder corpus took from file names cannot be speakers: each has one label only."""
    labels: dict[str, set[str]] = {}
    for clip in clips:
        labels.setdefault(clip.speaker, set()).add(clip.label)
    if len({clip.label for clip in clips}) < 2 or any(len(found) > 1 for found in labels.values()):
        return None
    return (f"folder: each of the {len(labels)} speakers taken from the file names under {root} (the part before "
            f"the first _ or -) has one label only, so they are not speakers, and grouping by them (training's "
            f"folds, an adapted evaluation's sessions) would hold out whole emotions; list each file's speaker in "
            f"{root / FOLDER_SPEAKERS} (columns file, speaker, gender)")


def _copy_order(kind: str, path: Path) -> tuple[bool, Path]:
    """The order in which copies of one take are met (the first is kept): by path, except that RAVDESS's
    audio-only set (modality 03, lossless) comes before audio taken from its audio-video files (01)."""
    return kind == "ravdess" and not path.name.startswith("03"), path


def _take(kind: str, path: Path) -> str:
    """What names one recording of a speaker in a named corpus, whatever its folder or extension."""
    stem = path.stem.lower()
    if kind == "ravdess":
        return stem[3:]                  # full audio-video (01) and audio-only (03) files of one take share the rest
    if kind == "savee":
        return stem.rsplit("_", 1)[-1]   # DC_a01 and DC/a01
    return stem


def recording(clip: Clip) -> tuple[str, str] | Path:
    """What names one recording: in a named corpus its speaker and take, whatever its root, folder or extension
    (a copy at another rate is the same recording); in a folder corpus the file itself."""
    return clip.path.resolve() if clip.corpus == "folder" else (clip.speaker, _take(clip.corpus, clip.path))


_PARSERS: dict[str, Callable[[Path], _Parsed]] = {
    "ravdess": _ravdess, "tess": _tess, "emodb": _emodb, "savee": _savee}


def scan_corpus(kind: str, root: str | Path, *,
                speakers_csv: str | Path | None = None, need_speakers: bool = True) -> CorpusScan:
    """Scan ``root`` recursively for ``.wav``/``.flac`` files named by ``kind``'s convention.

    Parameters
    ----------
    kind : str
        One of `KINDS`.
    root : str or Path
        Corpus directory.
    speakers_csv : str or Path, optional
        ``cremad``: demographics CSV (ActorID, Sex) instead of searching ``root``;
        ``folder``: CSV with ``file``, ``speaker`` and optional ``gender`` columns (default: ``speakers.csv``
        at ``root`` if there is one, else each file's speaker is its name up to the first ``_`` or ``-``).
    need_speakers : bool
        Whether the caller groups clips by speaker (training's folds, an adapted evaluation's sessions, noise set
        against each speaker's level); if so, folder speakers guessed from file names that each hold one label
        only are an error (:class:`GuessedSpeakersError`).

    Returns
    -------
    CorpusScan
        Clips sorted by path; every audio file that could not be parsed is in ``rejected``, and so are
        broken links and, in the named corpora, a second copy of a speaker's recording (a corpus unpacked
        twice, a ``.wav`` beside its ``.flac``, or a RAVDESS take in both the audio-only and audio-video sets).

    Raises
    ------
    CorpusError
        Unknown kind, missing root, no audio files or none that parses, misused or malformed CSV, or folder
        speakers taken from file names that each hold one label only.
    """
    if kind not in KINDS:
        raise CorpusError(f"unknown corpus kind {kind!r}; expected one of {', '.join(KINDS)}")
    if speakers_csv is not None and kind not in SPEAKER_CSV_KINDS:
        raise CorpusError(f"speakers_csv is only used by cremad and folder, not {kind}")
    root = Path(root).expanduser()
    if not root.exists():
        raise CorpusError(f"corpus root {root} does not exist")
    if not root.is_dir():
        raise CorpusError(f"corpus root {root} is not a directory")
    audio, broken = audio_files(root)
    if not audio:
        raise CorpusError(f"no .wav or .flac files under {root}" + (f" ({len(broken)} broken links)" if broken else ""))
    csv_path = None if speakers_csv is None else Path(speakers_csv).expanduser()
    parse: Callable[[Path], _Parsed]
    if kind == "cremad":
        parse = partial(_cremad, genders=_cremad_genders(root, csv_path))
    elif kind == "folder":
        speakers = _folder_speakers(root, csv_path)
        parse = partial(_folder, root=root, speakers=speakers)
    else:
        parse = _PARSERS[kind]
    clips: list[Clip] = []
    rejected: list[tuple[Path, str]] = [(path, "a link to nothing") for path in broken]
    first: dict[tuple[str, str], Path] = {}    # a named corpus's (speaker, take) -> the copy kept
    for path in sorted(audio, key=partial(_copy_order, kind)):
        try:
            label, speaker, gender = parse(path)
            key = (speaker, _take(kind, path))
            if kind != "folder" and first.setdefault(key, path) != path:
                raise _Reject(f"a second copy of {first[key]}")
        except _Reject as exc:
            rejected.append((path, str(exc)))
        else:
            clips.append(Clip(path, label, f"{kind}:{speaker}", gender, kind))
    clips.sort(key=lambda clip: clip.path)
    if not clips:
        path, reason = rejected[len(broken)]    # the first file that is there (every one was rejected)
        raise CorpusError(f"none of the {len(rejected)} audio files under {root} is a {kind} clip "
                          f"(the first, {path.name}: {reason}); is {kind} the right kind of corpus?")
    if kind == "folder" and speakers is None and need_speakers:
        problem = _guessed_speakers_problem(clips, root)
        if problem:
            raise GuessedSpeakersError(problem)
    if rejected:
        logger.warning("%s: rejected %d of %d audio files under %s",
                       kind, len(rejected), len(audio) + len(broken), root)
    return CorpusScan(tuple(clips), tuple(sorted(rejected)))


def sung(clip: Clip) -> bool:
    """Whether a clip is one of RAVDESS's songs (vocal channel 02), which the ravdess corpus reads beside its speech."""
    return clip.corpus == "ravdess" and _RAVDESS_RE.fullmatch(clip.path.stem).group(2) == "02"


def summarize(scan: CorpusScan) -> str:
    """One line such as ``"ravdess: 1200 clips, 20 speakers, 0 rejected"``; songs among the clips and
    speakers of unknown gender are counted."""
    corpora = ", ".join(sorted({clip.corpus for clip in scan.clips}))
    speakers = len({clip.speaker for clip in scan.clips})
    unknown = len({clip.speaker for clip in scan.clips if clip.gender is None})
    songs = sum(map(sung, scan.clips))
    of_them = f" ({songs} of them sung, RAVDESS vocal channel 02)" if songs else ""
    genders = f" ({unknown} of unknown gender)" if unknown else ""
    return (f"{corpora}: {len(scan.clips)} clips{of_them}, {speakers} speakers{genders}, "
            f"{len(scan.rejected)} rejected")
