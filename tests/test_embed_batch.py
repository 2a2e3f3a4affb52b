"""Concurrent writes share model calls (``memory/embed_batch.py``), with the real model,
and get the vectors they would have got one at a time."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from hivemem.memory import Memory, MiniLMEmbedder
from hivemem.memory.embed_batch import BatchingEmbedder

WRITERS = 24
DAYS = ["Monday", "Friday"]
TEXTS = [f"note {i}: the deploy of service {i % 5} moved to {DAYS[i % 2]}" for i in range(WRITERS)]


class HeldFirstCall:
    """The real model, whose first call waits until all ``total`` calls (of one text
    each) are in it or queued: the batches then do not depend on thread timing."""

    def __init__(self, inner: MiniLMEmbedder, batcher: list[BatchingEmbedder], total: int):
        self.inner = inner
        self.name, self.dim = inner.name, inner.dim
        self.batcher = batcher
        self.total = total
        self.calls: list[int] = []

    def embed(self, texts: list[str]) -> np.ndarray:
        if not self.calls:
            deadline = time.monotonic() + 60
            while len(texts) + self.batcher[0]._queue.qsize() < self.total:
                assert time.monotonic() < deadline, "the other writers never queued"
                time.sleep(0.005)
        self.calls.append(len(texts))
        return self.inner.embed_reference(texts)


@pytest.fixture(scope="module")
def torch_only() -> MiniLMEmbedder:
    """MiniLM as the store uses it (torch for writes; the int8 export for small queries)."""
    model = MiniLMEmbedder()
    model.warm_up()
    return model


def _write_concurrently(mem: Memory) -> None:
    start = threading.Barrier(WRITERS)
    errors: list[BaseException] = []

    def write(i: int) -> None:
        try:
            start.wait()
            mem.put("team/notes", f"k{i}", {"i": i}, text=TEXTS[i])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def _stored(mem: Memory) -> dict[str, np.ndarray]:
    return {
        r["key"]: np.asarray(r["vector"], dtype=np.float32)
        for r in mem.export("team")
        if "vector" in r
    }


@pytest.fixture
def held(torch_only: MiniLMEmbedder) -> Iterator[tuple[Memory, HeldFirstCall]]:
    box: list[BatchingEmbedder] = []
    model = HeldFirstCall(torch_only, box, total=WRITERS)
    mem = Memory.open(":memory:", embedder=model, reaper_interval=None)
    assert mem._core.write_embedder is not None
    box.append(mem._core.write_embedder)
    yield mem, model
    mem.close()


def test_concurrent_writes_are_embedded_in_fewer_model_calls_than_writes(
    held: tuple[Memory, HeldFirstCall],
) -> None:
    mem, model = held
    _write_concurrently(mem)
    # what reached the worker first (within max_wait), then the others in full batches
    batch = mem._core.write_embedder.max_batch  # type: ignore[union-attr]
    assert sum(model.calls) == WRITERS and max(model.calls) <= batch
    assert len(model.calls) <= 1 + -(-(WRITERS - model.calls[0]) // batch) < WRITERS
    assert mem.write_embedding() == (len(model.calls), WRITERS)
    assert mem.status()["revision"] == WRITERS and len(_stored(mem)) == WRITERS


def test_batched_vectors_equal_the_one_at_a_time_vectors(
    held: tuple[Memory, HeldFirstCall], torch_only: MiniLMEmbedder
) -> None:
    mem, _ = held
    _write_concurrently(mem)
    stored = _stored(mem)
    alone = Memory.open(":memory:", embedder=torch_only, reaper_interval=None)
    try:
        for i, text in enumerate(TEXTS[:4]):  # what a lone put stores
            alone.put("team/notes", f"k{i}", {"i": i}, text=text)
        lone = _stored(alone)
    finally:
        alone.close()
    for i, text in enumerate(TEXTS):
        one = torch_only.embed_reference([text])[0]
        np.testing.assert_allclose(stored[f"k{i}"], one, atol=1e-5)
        if i < 4:
            np.testing.assert_allclose(lone[f"k{i}"], one, atol=1e-5)


def test_stored_vectors_do_not_depend_on_the_batch_size_but_small_queries_may(
    torch_only: MiniLMEmbedder,
) -> None:
    """Why writes use ``embed_reference``: the int8 export that answers small query
    batches points a little elsewhere than torch (cosine below 0.999 for some texts)."""
    together = torch_only.embed_reference(TEXTS)
    query_path = torch_only.embed(TEXTS[:1])[0]  # one text: the int8 export
    batcher = BatchingEmbedder(torch_only)
    try:
        for i in (0, 7, 23):
            np.testing.assert_allclose(batcher.embed([TEXTS[i]])[0], together[i], atol=1e-5)
    finally:
        batcher.close()
    assert float(np.dot(query_path, together[0])) > 0.95


class Failing:
    name, dim = "failing", 4

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        if not self.entered:
            self.entered = len(texts)
            self.gate.wait(30)
        raise RuntimeError(f"model broke on {len(texts)} texts")


def test_a_model_error_reaches_every_caller_of_its_batch_and_the_next_batch_runs() -> None:
    model = Failing()
    batcher = BatchingEmbedder(model, max_wait=0.0)
    errors: list[str] = []

    def call(i: int) -> None:
        try:
            batcher.embed([f"t{i}"])
        except RuntimeError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=call, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while model.entered + batcher._queue.qsize() < 5:  # the rest wait behind the first
        assert time.monotonic() < deadline
        time.sleep(0.005)
    first = model.entered
    model.gate.set()
    for t in threads:
        t.join()
    expected = [f"model broke on {first} texts"] * first
    expected += [f"model broke on {5 - first} texts"] * (5 - first)
    assert sorted(errors) == sorted(expected) and len(errors) == 5
    batcher.close()


def test_a_batch_holds_at_most_max_batch_texts_and_a_big_call_goes_alone(
    torch_only: MiniLMEmbedder,
) -> None:
    box: list[BatchingEmbedder] = []
    model = HeldFirstCall(torch_only, box, total=11)
    batcher = BatchingEmbedder(model, max_batch=4)  # type: ignore[arg-type]
    box.append(batcher)
    threads = [threading.Thread(target=batcher.embed, args=([t],)) for t in TEXTS[:11]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    first = model.calls[0]
    assert all(n <= 4 for n in model.calls) and sum(model.calls) == 11
    assert len(model.calls) == 1 + -(-(11 - first) // 4)  # then full batches of 4
    out = batcher.embed(TEXTS[:6])  # not smaller than max_batch: straight to the model
    assert out.shape == (6, 384) and model.calls[-1] == 6
    batcher.close()
    # after close, calls still answer (directly)
    assert batcher.embed(["after close"]).shape == (1, 384)
