"""Cross-request batching: concurrent requests share one forward pass.

Request threads hand their images to a `BatchQueue` and wait. One worker thread takes everything waiting
(up to `max_lines` images, after at most `max_wait_ms` for more to arrive), reads it in one
`predict(images, key)` call and hands each request its own results. Only requests with the same `key`
(the decoding domain) share a call; the others wait for the next one, in arrival order. On a CPU the model runs one batch at a
time anyway; grouping turns many batch-1 forwards into a few larger ones. The predictor is
batch-invariant, so a line reads the same whatever it was grouped with.

Freed image buffers go back to the OS after each batch (`malloc_trim` on glibc): a request of large
images must not leave the server holding its peak memory.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

BATCH_LINES = 32  # lines of concurrent requests read in one call at most


def _malloc_trim() -> Callable[[], None]:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError, TypeError):  # not glibc (macOS, musl, Windows): nothing to do
        return lambda: None
    return lambda: trim(0)


release_free_memory = _malloc_trim()


@dataclass
class _Job:
    images: Sequence
    key: object = None
    done: threading.Event = field(default_factory=threading.Event)
    results: list | None = None
    error: BaseException | None = None


class BatchQueue:
    """`queue(images, key) -> results`, from any thread; the calls are served by one worker, grouped."""

    def __init__(
        self, predict: Callable[[list, object], list], max_lines: int = BATCH_LINES, max_wait_ms: float = 2.0
    ) -> None:
        self._predict = predict
        self.max_lines = max(1, max_lines)
        self.max_wait = max(0.0, max_wait_ms) / 1000
        self._jobs: queue.Queue[_Job] = queue.Queue()
        self._deferred: deque[_Job] = deque()  # taken with another key; served first next time (worker only)
        self._worker: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def __call__(self, images: Sequence, key: object = None) -> list:
        if not images:
            return []
        self._ensure_worker()
        job = _Job(images, key)
        self._jobs.put(job)
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.results  # type: ignore[return-value]

    def _ensure_worker(self) -> None:
        with self._start_lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._serve, name="vihtr-batcher", daemon=True)
                self._worker.start()

    def _take(self) -> list[_Job]:
        """The oldest job, and whatever else with its key is waiting or arrives within max_wait, up to
        max_lines images; jobs with another key are deferred."""
        first = self._deferred.popleft() if self._deferred else self._jobs.get()
        jobs, lines = [first], len(first.images)
        others: deque[_Job] = deque()
        while self._deferred:
            job = self._deferred.popleft()
            if job.key == first.key and lines < self.max_lines:
                jobs.append(job)
                lines += len(job.images)
            else:
                others.append(job)
        deadline = time.monotonic() + self.max_wait
        while lines < self.max_lines:
            try:
                job = self._jobs.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if job.key != first.key:
                others.append(job)
                continue
            jobs.append(job)
            lines += len(job.images)
        self._deferred = others
        return jobs

    def _serve(self) -> None:
        while True:
            jobs = self._take()
            try:
                results = self._predict([image for job in jobs for image in job.images], jobs[0].key)
                start = 0
                for job in jobs:
                    job.results = results[start : start + len(job.images)]
                    start += len(job.images)
            except BaseException as e:  # each waiting request gets the error; the worker goes on
                for job in jobs:
                    job.error = e
            finally:
                for job in jobs:
                    job.images = ()
                    job.done.set()
                del jobs
                release_free_memory()
