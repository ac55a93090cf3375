"""The background writer of one run: logging is an append to a list, the database sees batches.

``log_metric`` must cost microseconds, so calls only validate and append under a lock; a daemon
thread writes whatever accumulated once a second (or sooner when the buffer is large) in one
transaction. ``close`` writes the rest, so nothing is lost on a normal exit, an exception or
SIGTERM (the run ends through ``close``); a SIGKILL loses at most the last interval. A write that
fails (a param re-logged with another value by another process, the database gone) is raised to the
caller on its next call, never swallowed.
"""

from __future__ import annotations

import threading
from typing import Any

from mlcustody.errors import UsageError
from mlcustody.metadata.engine import Database
from mlcustody.metadata.runs import store as runs
from mlcustody.metadata.runs import values as run_values
from mlcustody.metadata.runs.store import IO, Batch, ColumnLink, Metric, RecordLink

FLUSH_SECONDS = 1.0
_EARLY_FLUSH_ROWS = 50_000
_PARAM_HINT = "params are fixed once logged; log a metric or a tag for values that change"


class RunWriter:
    def __init__(self, db: Database, run_id: str, *, interval: float = FLUSH_SECONDS) -> None:
        self.db = db
        self.run_id = run_id
        self._interval = interval
        self._batch = Batch()
        self._params: dict[str, str] = {}
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    # -- called by the run (any thread) --------------------------------------------------------------

    def param(self, key: str, value: Any) -> None:
        run_values.validate_key(key, "param")
        text = run_values.param_text(key, value)
        with self._lock:
            self._check()
            known = self._params.get(key)
            if known is not None and known != text:
                raise UsageError(
                    f"param {key!r} was already logged as {known}, cannot change it to {text}", hint=_PARAM_HINT
                )
            self._params[key] = text
            self._batch.params[key] = value
        self._started()

    def tag(self, key: str, value: str) -> None:
        run_values.validate_key(key, "tag")
        with self._lock:
            self._check()
            self._batch.tags[key] = str(value)
        self._started()

    def metric(self, metric: Metric) -> None:
        with self._lock:
            self._check()
            self._batch.metrics.append(metric)
            if len(self._batch.metrics) >= _EARLY_FLUSH_ROWS:
                self._wake.set()
        self._started()

    def io(self, item: IO) -> None:
        with self._lock:
            self._check()
            self._batch.io[(item.role, item.path)] = item
        self._started()

    def lineage(self, records: list[RecordLink], columns: list[ColumnLink]) -> None:
        with self._lock:
            self._check()
            self._batch.records.update({(r.output, r.input): r for r in records})
            self._batch.columns.update(columns)
        self._started()

    def flush(self) -> None:
        """Write everything logged so far, now, in one transaction."""
        with self._flush_lock:
            with self._lock:
                batch, self._batch = self._batch, Batch()
            if not batch:
                return
            try:
                with self.db.write() as conn:
                    conflicts = runs.write_batch(conn, self.run_id, batch)
            except BaseException:
                self._restore(batch)
                raise
        if conflicts:
            raise UsageError(f"run {self.run_id}: " + "; ".join(conflicts), hint=_PARAM_HINT)

    def _restore(self, batch: Batch) -> None:
        """Put a batch that could not be written back in front of what was logged since."""
        with self._lock:
            newer, self._batch = self._batch, batch
            self._batch.params.update(newer.params)
            self._batch.tags.update(newer.tags)
            self._batch.metrics.extend(newer.metrics)
            self._batch.io.update(newer.io)
            self._batch.records.update(newer.records)
            self._batch.columns.update(newer.columns)

    def close(self) -> None:
        """Stop the thread and write the rest; raises what a background write raised."""
        with self._lock:
            self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        self.flush()
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    # -- internals -----------------------------------------------------------------------------------

    def _check(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        if self._closed:
            raise UsageError(f"run {self.run_id} has ended", hint="log to an active run")

    def _started(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None and not self._closed:
                    self._thread = threading.Thread(target=self._loop, name=f"custody-run-{self.run_id[:8]}")
                    self._thread.daemon = True
                    self._thread.start()

    def _loop(self) -> None:
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            with self._lock:
                closed = self._closed
            if closed:
                return  # close() writes the rest from the caller's thread
            try:
                self.flush()
            except BaseException as exc:  # handed to the caller on its next call
                self._error = exc
