"""The micro-batcher: concurrent requests merged into one ``predict`` call.

A scikit-learn Pipeline costs about the same per call for one row as for a hundred, so merging the requests
that arrive together multiplies throughput. A small call of a light compiled model (``FastPipeline.light``: a
few numpy operations, ~0.05-0.3 ms) runs right on the event loop: handing it to a thread and back costs more
than the call (thread wake-ups and GIL hand-offs; ``benchmarks/serving.py`` measured a fifth less CPU per
request inline). Every other call (large, a heavier model, or a pipeline served through pandas) runs on a
worker thread, so the loop keeps reading requests meanwhile.

A call of a few rows runs with one OpenMP thread: HistGradientBoosting's prediction otherwise starts a
parallel region per tree, and waking the team costs far more than predicting a few rows (several ms per call
on a loaded 2-core machine, measured by ``benchmarks/serving.py``); large calls keep every thread. OpenMP's
limit belongs to the calling thread, so it never touches the poller's or the event loop's (BLAS limits would
be process-wide, and BLAS already runs small products on one thread).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from threadpoolctl import ThreadpoolController

from mlops_assets.core.probabilities import Predicted
from mlops_assets.serving import protocol
from mlops_assets.serving.models import Slot

MAX_BATCH_ROWS = 4096  # rows merged into one predict call; a bigger request still goes alone
BATCH_WINDOW_SECONDS = 0.002  # the longest a call waits for the requests it expects (see Batcher)
SINGLE_THREAD_ROWS = 512  # calls of up to this many rows run with one OpenMP thread (the module's docstring)
INLINE_ROWS = 64  # light compiled calls of up to this many rows run on the event loop (the module's docstring)


@dataclass(frozen=True)
class Answer:
    """One request's answer, JSON-safe: a label or value per row and, for a classifier, a probability per row
    and class (in ``slot.predictor.classes`` order), computed in the same model call."""

    outputs: list[Any]
    probabilities: list[list[Any]] | None = None


@dataclass
class _Job:
    slot: Slot
    rows: protocol.Rows
    future: asyncio.Future[Answer]


class Batcher:
    """Runs predictions on the event loop or one worker thread, merging queued requests into one call per model.

    Each call takes every request that arrived while the previous one ran. As many clients as the last call
    served are expected again (each sends its next request once answered), so a call waits up to
    ``window`` seconds for them to arrive rather than splitting them over two calls. A lone client is never
    kept waiting: its calls take one request, so one is expected. Only the event loop touches the queue.
    """

    def __init__(self, max_rows: int = MAX_BATCH_ROWS, window: float = BATCH_WINDOW_SECONDS,
                 on_calls: Callable[[int], None] | None = None) -> None:
        self.max_rows = max_rows
        self.window = window
        self.calls = 0
        self._on_calls = on_calls  # told the model calls each batch makes (the gateway's metrics)
        self._pending: list[_Job] = []
        self._expected = 1
        self._enough: asyncio.Future[None] | None = None
        self._drainer: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="predict")
        self._openmp: list[Any] | None = None  # OpenMP runtimes, found once the model's libraries are loaded

    async def predict(self, slot: Slot, rows: protocol.Rows) -> Answer:
        loop = asyncio.get_running_loop()
        job = _Job(slot, rows, loop.create_future())
        self._pending.append(job)
        if self._drainer is None:
            self._drainer = loop.create_task(self._drain())
        elif self._enough is not None and len(self._pending) >= self._expected:
            _settle(self._enough)
        return await job.future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                if len(self._pending) < self._expected:
                    self._enough = loop.create_future()
                    timer = loop.call_later(self.window, _settle, self._enough)
                    await self._enough
                    timer.cancel()
                    self._enough = None
                take, rows = 1, self._pending[0].rows.n
                while take < len(self._pending) and rows + self._pending[take].rows.n <= self.max_rows:
                    rows += self._pending[take].rows.n
                    take += 1
                jobs, self._pending = self._pending[:take], self._pending[take:]
                self._expected = take
                calls = len({id(job.slot) for job in jobs})
                self.calls += calls
                if self._on_calls is not None:
                    self._on_calls(calls)
                try:
                    if rows <= INLINE_ROWS and all(job.slot.fast is not None and job.slot.fast.light for job in jobs):
                        results = self._predict(jobs, rows)
                    else:
                        results = await loop.run_in_executor(self._executor, self._predict, jobs, rows)
                except RuntimeError as exc:  # the executor is shut down: the gateway is stopping
                    results = [exc] * len(jobs)
                for job, result in zip(jobs, results, strict=True):
                    if job.future.done():
                        continue
                    if isinstance(result, Exception):
                        job.future.set_exception(result)
                    else:
                        job.future.set_result(result)
        finally:
            self._drainer = None

    def _predict(self, jobs: Sequence[_Job], rows: int) -> list[Answer | Exception]:
        """The call (on the worker thread or the loop), with one OpenMP thread when it is small (the limit is the
        calling thread's)."""
        if rows > SINGLE_THREAD_ROWS:
            return _predict_jobs(jobs)
        if self._openmp is None:
            self._openmp = ThreadpoolController().select(user_api="openmp").lib_controllers
        # threadpoolctl's own limit() re-reads every library's info per call (~12 us); setting and restoring
        # the found runtimes directly costs ~1 us
        before = [lib.num_threads for lib in self._openmp]
        for lib in self._openmp:
            lib.set_num_threads(1)
        try:
            return _predict_jobs(jobs)
        finally:
            for lib, threads in zip(self._openmp, before, strict=True):
                lib.set_num_threads(threads)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _answer(predicted: Predicted) -> Answer:
    return Answer(protocol.jsonable(predicted.labels),
                  None if predicted.proba is None else protocol.jsonable(predicted.proba))


def _predict_jobs(jobs: Sequence[_Job]) -> list[Answer | Exception]:
    """One predict per model over all its jobs' rows, split back per job. If the merged call
    fails, each job is predicted alone, so only the request whose rows break the model gets the error."""
    results: list[Answer | Exception] = [Answer([]) for _ in jobs]
    groups: dict[int, list[int]] = defaultdict(list)
    for i, job in enumerate(jobs):
        groups[id(job.slot)].append(i)
    for members in groups.values():
        slot = jobs[members[0]].slot
        try:
            predicted = slot.predict([jobs[i].rows for i in members])
            if len(predicted) != sum(jobs[i].rows.n for i in members):
                raise ValueError(f"the model returned {len(predicted)} predictions for a batch of requests")
        except Exception as exc:
            if len(members) == 1:
                results[members[0]] = exc
                continue
            for i in members:
                try:
                    results[i] = _answer(slot.predict([jobs[i].rows]))
                except Exception as single:  # this request's rows are what the model cannot score
                    results[i] = single
            continue
        start = 0
        for i in members:
            results[i] = _answer(predicted.rows(start, start + jobs[i].rows.n))
            start += jobs[i].rows.n
    return results
