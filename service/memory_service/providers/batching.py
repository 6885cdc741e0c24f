"""Micro-batching: concurrent embedding calls share one model run.

A transformer run has a fixed cost (graph dispatch, small matrix products that leave the SIMD
units half idle) that one short query pays alone; several queries padded into one batch pay it
once. The batch forms without a timer: a caller runs at once when a model run slot is free (no
added latency at low load); callers that arrive while every slot is busy queue up, and the next
free slot takes all of them (up to `max_batch`) as one run. Under load the batches grow by
themselves, exactly as large as the arrivals during one run. An optional `max_wait` lets a caller
wait that long for company before starting when the batcher is loaded: a run is in progress, or
the last one ended less than `max_wait` ago (runs back to back; with one slot per worker, the
two-worker default on 2 cores, no slot is ever busy when a caller leads). Measured on this
service's 2 cores it cut model CPU per search but raised no throughput, and a sequential client
whose requests come within the wait pays it (docs/capacity.md), so it defaults to 0.

Any text goes into the queue as is; the model (providers/onnx.py) splits a batch by length so
short queries are not padded to a long memory's length.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from memory_service.observability.metrics import EMBEDDING_BATCH_SIZE, EMBEDDING_CPU

Vectors = npt.NDArray[np.float32]


@dataclass(slots=True)
class _Slot:
    text: str
    vector: Vectors | None = None
    error: BaseException | None = None
    done: bool = False


@dataclass
class MicroBatcher:
    """Runs `encode` over the texts of concurrent callers, `runners` runs at a time."""

    encode: Callable[[Sequence[str]], Vectors]
    runners: int = 1
    max_batch: int = 32
    max_wait: float = 0.0
    _pending: list[_Slot] = field(default_factory=list, init=False)
    _running: int = field(default=0, init=False)
    _last_end: float = field(default=float("-inf"), init=False)
    _cond: threading.Condition = field(default_factory=threading.Condition, init=False)

    def __call__(self, texts: Sequence[str]) -> list[Vectors]:
        """The vectors of `texts`, in order; raises what the model raised for them."""
        slots = [_Slot(t) for t in texts]
        with self._cond:
            self._pending.extend(slots)
            while not all(s.done for s in slots):
                if self._running < self.runners and self._pending:
                    self._lead()
                else:
                    self._cond.wait()
        vectors: list[Vectors] = []
        for slot in slots:
            if slot.error is not None:
                raise slot.error
            assert slot.vector is not None
            vectors.append(slot.vector)
        return vectors

    def _loaded(self) -> bool:
        """A run is in progress, or runs come back to back (the last ended within `max_wait`)."""
        return self._running > 0 or time.monotonic() - self._last_end < self.max_wait

    def _lead(self) -> None:
        """Take the queue's head as one batch and run it (called holding the lock; releases it
        while the model runs)."""
        if self.max_wait > 0 and len(self._pending) < self.max_batch and self._loaded():
            deadline = time.monotonic() + self.max_wait
            while len(self._pending) < self.max_batch and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)
            if not self._pending or self._running >= self.runners:
                return  # another caller took the queue meanwhile
        batch = self._pending[: self.max_batch]
        del self._pending[: self.max_batch]
        self._running += 1
        self._cond.release()
        try:
            EMBEDDING_BATCH_SIZE.observe(len(batch))
            cpu = time.thread_time()
            try:
                vectors = self.encode([s.text for s in batch])
                for slot, vector in zip(batch, vectors, strict=True):
                    slot.vector = vector
            except BaseException as exc:  # every caller of the batch gets the failure, none hangs
                for slot in batch:
                    slot.error = exc
            EMBEDDING_CPU.inc(time.thread_time() - cpu)  # this thread's CPU: the run's, with one intra-op thread
        finally:
            self._cond.acquire()
            self._running -= 1
            self._last_end = time.monotonic()
            for slot in batch:
                slot.done = True
            self._cond.notify_all()
