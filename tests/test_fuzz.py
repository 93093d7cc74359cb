"""Seeded mutation fuzzing of `ser replay` (benchmarks/fuzz_replay.py runs thousands of cases)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.fuzz_replay import MUTATORS, fuzz, mutate, replay_outcome, write_seed_files

CASES = 800


def test_seed_files_replay_to_valid_output_with_speech(tmp_path):
    """Speech in every seed, so the mutants exercise the scoring path, not only the no-speech one."""
    for path in write_seed_files(tmp_path):
        outcome = replay_outcome(path)
        assert outcome.kind == "output", (path.name, outcome.detail)
        events = [json.loads(line) for line in path.with_name(path.name + ".jsonl").read_text().splitlines()]
        assert any(e["type"] == "segment" for e in events), path.name


@pytest.mark.parametrize("mutator", MUTATORS, ids=lambda m: m.__name__.strip("_"))
def test_mutators_change_the_bytes_reproducibly(mutator):
    data = bytes(range(256)) * 16
    first = mutator(bytearray(data), np.random.default_rng(3))
    assert first != bytearray(data)
    assert mutator(bytearray(data), np.random.default_rng(3)) == first
    assert mutate(data, np.random.default_rng(3)) == mutate(data, np.random.default_rng(3))


def test_mutated_files_end_in_a_clean_error_or_valid_output(tmp_path):
    counts, crashes, _ = fuzz(CASES, seed=0, workdir=tmp_path)
    assert crashes == []
    assert counts["output"] + counts["error"] == CASES
    assert counts["output"] > CASES // 10 and counts["error"] > CASES // 10  # both paths are exercised
