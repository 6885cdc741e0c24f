"""Micro-batching on the real ONNX model: concurrent callers share runs, each gets its own vector,
a lone caller runs at once, and a failed run fails every caller of it (none hangs)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from memory_service.providers.batching import MicroBatcher, Vectors
from memory_service.providers.onnx import OnnxMiniLMEmbedder

TEXTS = [f"what did I say about topic {i} and the {w}" for i, w in enumerate("abcdefghijklmnopqrstuvwxyz")]


@pytest.fixture(scope="module")
def model() -> OnnxMiniLMEmbedder:
    return OnnxMiniLMEmbedder()


class GatedModel:
    """The model's own encode, holding its first run until `release` so that callers queue up
    behind it as they do behind a run in progress under load; records every run's texts."""

    def __init__(self, model: OnnxMiniLMEmbedder) -> None:
        self.model = model
        self.runs: list[list[str]] = []
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, texts: Sequence[str]) -> Vectors:
        self.runs.append(list(texts))
        if len(self.runs) == 1:
            self.started.set()
            assert self.release.wait(30)
        return self.model._encode(texts)


def test_callers_arriving_during_a_run_share_the_next_run(model: OnnxMiniLMEmbedder) -> None:
    gated = GatedModel(model)
    batcher = MicroBatcher(gated, runners=1, max_batch=32)
    with ThreadPoolExecutor(max_workers=len(TEXTS)) as pool:
        first = pool.submit(batcher, [TEXTS[0]])
        assert gated.started.wait(30)
        rest = [pool.submit(batcher, [text]) for text in TEXTS[1:]]
        deadline = time.monotonic() + 30
        while len(batcher._pending) < len(TEXTS) - 1:  # every later caller is queued
            assert time.monotonic() < deadline
            time.sleep(0.001)
        gated.release.set()
        vectors = [first.result(30)[0]] + [f.result(30)[0] for f in rest]
    assert [len(run) for run in gated.runs] == [1, len(TEXTS) - 1]
    alone = np.stack([model._encode([text])[0] for text in TEXTS])
    np.testing.assert_allclose(np.stack(vectors), alone, atol=1e-6)  # each caller got its own text's vector


def test_batches_are_capped_at_max_batch(model: OnnxMiniLMEmbedder) -> None:
    gated = GatedModel(model)
    batcher = MicroBatcher(gated, runners=1, max_batch=8)
    with ThreadPoolExecutor(max_workers=len(TEXTS)) as pool:
        first = pool.submit(batcher, [TEXTS[0]])
        assert gated.started.wait(30)
        rest = [pool.submit(batcher, [text]) for text in TEXTS[1:]]
        while len(batcher._pending) < len(TEXTS) - 1:
            time.sleep(0.001)
        gated.release.set()
        for future in [first, *rest]:
            future.result(30)
    assert [len(run) for run in gated.runs] == [1, 8, 8, 8, 1]


def test_a_lone_caller_runs_at_once_even_with_a_wait_configured(model: OnnxMiniLMEmbedder) -> None:
    """The wait only applies while another run is in progress: at low load nothing waits."""
    batcher = MicroBatcher(model._encode, runners=2, max_batch=32, max_wait=5.0)
    started = time.perf_counter()
    batcher([TEXTS[0]])
    assert time.perf_counter() - started < 2.0


def test_under_load_a_wait_gathers_company_even_with_one_run_slot(model: OnnxMiniLMEmbedder) -> None:
    """Runs back to back mean load: the next caller waits up to `max_wait` for company even when
    the only slot is free (one slot per worker is the two-worker default, where a wait that
    needed a busy slot never applied)."""
    runs: list[int] = []

    def encode(texts: Sequence[str]) -> Vectors:
        runs.append(len(texts))
        return model._encode(texts)

    batcher = MicroBatcher(encode, runners=1, max_batch=32, max_wait=1.0)
    batcher([TEXTS[0]])  # alone: nothing ran before it, so it did not wait
    with ThreadPoolExecutor(max_workers=2) as pool:
        first = pool.submit(batcher, [TEXTS[1]])
        time.sleep(0.2)
        second = pool.submit(batcher, [TEXTS[2]])
        first.result(30)
        second.result(30)
    assert runs == [1, 2]


def test_one_call_with_many_texts_is_one_run_in_order(model: OnnxMiniLMEmbedder) -> None:
    runs: list[int] = []

    def encode(texts: Sequence[str]) -> Vectors:
        runs.append(len(texts))
        return model._encode(texts)

    vectors = MicroBatcher(encode, runners=1, max_batch=64)(TEXTS)
    assert runs == [len(TEXTS)]
    np.testing.assert_allclose(np.stack(vectors), model._encode(TEXTS), atol=1e-6)


def test_a_failed_run_fails_each_of_its_callers_and_the_batcher_goes_on(model: OnnxMiniLMEmbedder) -> None:
    failing = {"on": True}

    def encode(texts: Sequence[str]) -> Vectors:
        if failing["on"]:
            raise RuntimeError("model failed")
        return model._encode(texts)

    batcher = MicroBatcher(encode, runners=1, max_batch=32)
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(batcher, [text]) for text in TEXTS[:4]]
        for future in futures:
            with pytest.raises(RuntimeError, match="model failed"):
                future.result(30)
    failing["on"] = False
    assert len(batcher([TEXTS[0]])[0]) == 384


def test_texts_of_very_different_lengths_give_the_vectors_they_give_alone(model: OnnxMiniLMEmbedder) -> None:
    """A batch is split by length before padding; the split must not mix up the order."""
    texts = ["short", "a much longer memory " * 30, "medium length question about cooking", "x"]
    together = model._encode(texts)
    alone = np.stack([model._encode([text])[0] for text in texts])
    np.testing.assert_allclose(together, alone, atol=1e-6)
