from types import SimpleNamespace

import numpy as np
import pytest

from realtime.features import DEFAULT_SPEC, functionals
from realtime.pipeline import WindowFeaturizer
from tests.conftest import bursts

RATE = 16000


def windows(x: np.ndarray, chunk: int, keep_frames: bool = False) -> list:
    featurizer = WindowFeaturizer(DEFAULT_SPEC, keep_frames=keep_frames)
    out = [w for i in range(0, len(x), chunk) for w in featurizer.push(x[i:i + chunk])] + featurizer.flush()
    return [w for w in out if w.vector is not None]


def test_one_huge_push_equals_small_blocks():
    """A whole 60 s stream pushed at once (longer than the frame history) gives the same windows and vectors."""
    spans = tuple((s, s + 2.5, "speechlike") for s in np.arange(1.0, 58.0, 4.0))
    x = bursts(total_s=60.0, spans=spans)
    small, huge = windows(x, 1600), windows(x, len(x))
    assert len(small) == len(huge) >= len(spans)
    for (w_small, v_small, _), (w_huge, v_huge, _) in zip(small, huge):
        assert w_small == w_huge
        assert np.any(v_small) and np.allclose(v_small, v_huge, rtol=1e-9, atol=1e-9)


def test_kept_frames_are_the_ones_the_vector_summarises():
    """With keep_frames, each window carries its frame matrix, and its vector is their functionals."""
    x = bursts(total_s=8.0, spans=((1.0, 3.0, "speechlike"), (4.5, 7.0, "speechlike")))
    kept = windows(x, 1600, keep_frames=True)
    assert kept and all(w.frames is None for w in windows(x, 1600))
    for window in kept:
        assert window.frames.shape == (len(window.frames), len(DEFAULT_SPEC.frame_names)) and len(window.frames) > 20
        np.testing.assert_array_equal(window.vector, functionals(window.frames, DEFAULT_SPEC))


def test_every_scored_window_gets_the_input_training_gave_it():
    """Segments and partials alike: speaker-adapted as its session's next window (training's normalisation),
    and with adaptation off each window stands alone, as training's cold windows."""
    import soundfile as sf

    from realtime.adapt import SpeakerAdapter, normalize_session
    from realtime.cli import demo_path
    from realtime.pipeline import Pipeline
    from realtime.scorer import DEFAULT_MODEL, Scorer

    audio, _ = sf.read(demo_path(), dtype="float32", stop=16000 * 20)
    for adapt in (True, False):
        pipeline = Pipeline(Scorer(DEFAULT_MODEL), adapt=adapt)
        inputs, score = [], pipeline.scorer.score
        pipeline.scorer.score = lambda x, frames: inputs.append(x[0]) or score(x, frames)
        events = [e for i in range(0, len(audio), 1600) for e in pipeline.push(audio[i:i + 1600])] + pipeline.flush()
        scored = [e for e in events if e.type != "speech_start"]
        assert {"partial", "segment"} <= {e.type for e in scored} and len(inputs) == len(scored)
        segments: list[np.ndarray] = []
        for event, given in zip(scored, inputs):
            served = pipeline.adapter
            reference = SpeakerAdapter(served.pop_mean, np.sqrt(served.pop_var), served.config)
            session = [*segments, event.vector] if adapt else [event.vector]
            np.testing.assert_allclose(given, normalize_session(session, reference)[-1], rtol=1e-6, atol=1e-6)
            if event.type == "segment":
                segments.append(event.vector)


def test_a_source_failing_mid_utterance_still_closes_its_window(tiny_model):
    from realtime.monitor import Monitor
    from realtime.pipeline import Pipeline
    from realtime.runner import run
    from realtime.scorer import Scorer
    from realtime.sources import Chunk, SourceError, SourceStats

    audio = bursts(total_s=3.0, spans=((0.5, 3.0, "noise"),))     # speech up to the fault
    class Failing:
        stats = SourceStats()
        def __iter__(self):
            for i in range(0, len(audio), 1600):
                yield Chunk(audio[i:i + 1600], i)
            raise SourceError("decoding failed")
    scorer = Scorer(tiny_model)
    records = []
    monitor = Monitor("x", "m", tuple(scorer.card.labels), tuple(scorer.card.gender_labels), RATE)
    with pytest.raises(SourceError):
        run(Failing(), Pipeline(scorer), [SimpleNamespace(write=records.append)], monitor)
    assert [r["type"] for r in records][-2:] == ["segment", "stats"] and records[-2]["end_s"] == pytest.approx(3.0, abs=0.05)


@pytest.mark.parametrize("total_s,block_s,ends", [
    (4.0, 0.1, [1.0, 2.0, 3.0, 4.0]),     # the last periodic one is the final one: written once
    (4.05, 0.1, [1.0, 2.0, 3.0, 4.0, 4.05]),
    (4.0, 2.5, [2.5, 4.0]),               # a block completing two periods writes one
])
def test_stats_come_per_period_and_once_at_the_end(tiny_model, total_s, block_s, ends):
    from realtime.monitor import Monitor
    from realtime.pipeline import Pipeline
    from realtime.runner import run
    from realtime.scorer import Scorer
    from realtime.sources import Chunk, SourceStats

    audio, block = np.zeros(int(total_s * RATE), np.float32), int(block_s * RATE)
    scorer = Scorer(tiny_model)
    records = []
    monitor = Monitor("x", "m", tuple(scorer.card.labels), tuple(scorer.card.gender_labels), RATE)

    class Blocks:
        stats = SourceStats()

        def __iter__(self):
            return (Chunk(audio[i:i + block], i) for i in range(0, len(audio), block))

    run(Blocks(), Pipeline(scorer), [SimpleNamespace(write=records.append)], monitor, stats_every_s=1.0)
    assert [r["end_s"] for r in records if r["type"] == "stats"] == ends


def test_event_record_fields():
    from realtime.pipeline import Event
    from realtime.sinks import event_record
    seg = event_record(Event("segment", 0, 16000, emotion="sad", smoothed_emotion="angry", latency_ms=1.23456), RATE)
    assert seg["emotion"] == "sad" and seg["smoothed_emotion"] == "angry" and seg["latency_ms"] == 1.235
    start = event_record(Event("speech_start", 0, 8000, latency_ms=5.0), RATE)
    assert start["latency_ms"] is None and start["smoothed_emotion"] is None


def test_blocks_dropped_on_closing_get_a_final_stats_event(tiny_model):
    """A second Ctrl-C just after a periodic stats: the microphone counts its unread blocks as dropped on
    closing, and the final stats must say so (it was skipped as a repeat of the periodic one)."""
    from realtime.monitor import Monitor
    from realtime.pipeline import Pipeline
    from realtime.runner import run
    from realtime.scorer import Scorer
    from realtime.sources import Chunk, SourceStats

    block = RATE // 10

    class Mic:
        stats = SourceStats()

        def __iter__(self):
            try:
                for i in range(20):
                    yield Chunk(np.zeros(block, np.float32), i * block)
            finally:
                self.stats.dropped_blocks += 3      # as MicSource counts the blocks it never handed over

    records = []

    class Interrupted(Monitor):
        def on_chunk(self, samples):
            if records:                               # Ctrl-C on the block after the periodic stats at 1 s
                raise KeyboardInterrupt
            super().on_chunk(samples)

    scorer = Scorer(tiny_model)
    monitor = Interrupted("x", "m", tuple(scorer.card.labels), tuple(scorer.card.gender_labels), RATE)
    assert run(Mic(), Pipeline(scorer), [SimpleNamespace(write=records.append)], monitor, stats_every_s=1.0)
    stats = [r for r in records if r["type"] == "stats"]
    assert [(r["end_s"], r["dropped_blocks"]) for r in stats] == [(1.0, 0), (1.0, 3)]


def test_jsonl_never_writes_nan(tmp_path):
    """Strict JSON, as the README promises: a NaN would be a bug to surface, not a line jq cannot parse."""
    from realtime.sinks import JsonlSink

    sink = JsonlSink(str(tmp_path / "e.jsonl"))
    with pytest.raises(ValueError, match="not JSON compliant"):
        sink.write({"latency_ms": float("nan")})
    sink.close()
    assert (tmp_path / "e.jsonl").read_text() == ""
