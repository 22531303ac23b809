"""The connection part of the AMQP transport: the I/O thread and its pika ``IOLoop``, the broker
connection, its reconnection with backoff, synchronous operations and timers.

Threads:

- **I/O thread** (``<name>-amqp-io``): runs one pika ``IOLoop`` for the transport's whole life and
  owns every pika object (``SelectConnection``, channels). Only the I/O thread touches pika; every
  other thread hands work over with ``call_soon`` (batched ``IOLoop.add_callback_threadsafe``).
  The loop outlives individual connections, so timers and settlements keep a home while a
  reconnect is in progress.
- **Maintenance thread**: reconnects (backoff + jitter) and asks the transport to restore what it
  had declared and consumed (``ConnectionEvents.restore``). It uses the same synchronous
  operations as callers do, which keeps the I/O thread purely callback-driven.
- **Timer thread**: runs ``call_later`` callbacks, so a slow callback cannot stall I/O.

The other parts (declarer, publisher, consumer) reach the broker only through this object.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Protocol, TypeVar
from urllib.parse import unquote, urlsplit

import pika
from pika.adapters.select_connection import IOLoop, SelectConnection

from sustainml.transport import TlsFiles, apply_tls, split_broker_url
from sustainml.transport.amqp.callbacks import resolve, shielded
from sustainml.transport.amqp.failures import (
    AUTH_ERRORS,
    close_reason,
    connect_failure,
    describe,
    sanitize_url,
    scrub,
    tls_verification_failed,
    unreachable,
)
from sustainml.transport.base import ConnectionLost, TransportError

log = logging.getLogger(__name__)

T = TypeVar("T")

# Under a broker memory/disk alarm the broker blocks publishing connections (connection.blocked)
# until the alarm clears. Publishes wait meanwhile (their futures stay pending, nothing is dropped)
# and resume on connection.unblocked. Only an alarm lasting longer than this turns into a
# connection loss and a reconnect (pending publishes then fail with ConnectionLost, reported to
# their callers), so a broker that never recovers cannot hang publishers forever.
BLOCKED_CONNECTION_TIMEOUT = 300.0
BACKOFF_INITIAL = 0.5
BACKOFF_MAX = 10.0


class ConnectionEvents(Protocol):
    """What the connection tells the rest of the transport."""

    def connection_opened(self, conn: SelectConnection, ready: Callable[[], None]) -> None:
        """(I/O thread) A connection opened; call ``ready`` once it can publish."""

    def connection_lost(self, exc: ConnectionLost) -> None:
        """(I/O thread) The current connection is gone: fail what waited on it."""

    def restore(self) -> None:
        """(maintenance thread) After a reconnect: declare and consume again."""

    def publishes_waiting(self) -> int:
        """Publishes waiting for their confirm (for the log of a blocked connection)."""


class Connection:
    """One broker connection at a time on a dedicated I/O thread, reconnected when lost."""

    def __init__(
        self,
        url: str,
        events: ConnectionEvents,
        *,
        heartbeat: int,
        name: str,
        connect_timeout: float,
        op_timeout: float,
        tls: TlsFiles | None,
        retry_refused: bool,
    ) -> None:
        self._events = events
        self._tls = tls  # amqps:// only: CA bundle / client cert (see sustainml.transport.apply_tls)
        self.safe_url = sanitize_url(url)
        self._url = url  # for connect_failure(), which never shows the password
        self._retry_refused = retry_refused
        self.password = unquote(urlsplit(url).password or "") if "://" in url else None
        self.name = name
        self._heartbeat = heartbeat
        self._connect_timeout = connect_timeout
        self.op_timeout = op_timeout
        # one set of parameters per cluster node named in the URL; connection attempts go round
        # them, starting at a random one so that replicas spread over the nodes
        self._params_list = [self._build_params(u) for u in split_broker_url(url)]
        self._next_host = random.randrange(len(self._params_list))
        # Stamped on every publish: the broker checks it against the login, so receivers can
        # trust it (None with EXTERNAL, certificate-based, authentication).
        credentials = self._params_list[0].credentials
        self.user_id: str | None = (
            credentials.username if isinstance(credentials, pika.PlainCredentials) else None
        )

        self.state_lock = threading.RLock()  # never held while waiting for the I/O thread
        self._connect_lock = threading.Lock()
        self._sync_futs: set[Future[Any]] = set()  # synchronous waits, failed fast by close()
        self.started = False
        self.closing = False
        self.closed = False
        self.ready = threading.Event()  # connected and topology/consumers restored
        self._close_event = threading.Event()  # wakes backoff sleeps on close()
        self._soon_lock = threading.Lock()
        self._soon: deque[Callable[[], None]] = deque()  # hand-overs to the I/O thread, in order
        self._soon_scheduled = False  # a _drain_soon is queued on the loop
        self._conn_closed_event = threading.Event()
        self._reconnecting = False
        self._lost = False
        self._blocked_since: float | None = None  # monotonic time of connection.blocked, if blocked

        self._ioloop: IOLoop | None = None
        self._io_thread: threading.Thread | None = None
        self._io_ident: int | None = None
        self._maint: ThreadPoolExecutor | None = None
        self._timers: ThreadPoolExecutor | None = None

        # I/O-thread state.
        self.conn: SelectConnection | None = None
        self.generation = 0  # connections opened so far: grows by one on every reconnect

    def _build_params(self, url: str) -> pika.URLParameters:
        try:
            params = pika.URLParameters(url)
        except Exception as exc:
            raise ValueError(
                f"invalid broker URL {self.safe_url}: {scrub(str(exc), self.password)}"
            ) from None
        apply_tls(params, url, self._tls)
        params.heartbeat = self._heartbeat
        params.blocked_connection_timeout = BLOCKED_CONNECTION_TIMEOUT
        params.client_properties = {"connection_name": self.name}
        # Our own loop retries with a deadline; pika gets one attempt per call.
        params.connection_attempts = 1
        params.socket_timeout = max(1.0, min(10.0, self._connect_timeout))
        params.stack_timeout = max(2.0, min(15.0, self._connect_timeout))
        return params

    @property
    def is_open(self) -> bool:
        return self.ready.is_set() and not self.closing

    @property
    def blocked(self) -> bool:
        return self._blocked_since is not None

    def on_io_thread(self) -> bool:
        return threading.get_ident() == self._io_ident

    def check_not_io_thread(self, what: str) -> None:
        if self.on_io_thread():
            raise RuntimeError(f"{what} is synchronous and cannot run on the transport's I/O thread")

    # ------------------------------------------------------------------ I/O thread plumbing
    def _io_main(self, loop: IOLoop) -> None:
        self._io_ident = threading.get_ident()
        while True:
            try:
                loop.start()
                return  # stop() was called
            except Exception:
                # A callback escaped our guards; keep the loop alive rather than lose all I/O.
                log.exception("unexpected error on the AMQP I/O thread (%s); continuing", self.safe_url)

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the I/O thread, after everything handed over before it. Raises
        ``ConnectionLost`` once the transport is closed.

        Hand-overs are queued here and the loop is woken once per batch, not once per call: every
        wake is a lock and a pipe write in pika, and every publish and ack from a handler thread
        comes through here (13 % of the orchestrator's samples when each call woke the loop)."""
        loop = self._ioloop
        if loop is None or self._io_thread is None or not self._io_thread.is_alive():
            raise ConnectionLost("the transport is closed")
        with self._soon_lock:
            self._soon.append(fn)
            if self._soon_scheduled:
                return  # the drain already queued on the loop will run it
            self._soon_scheduled = True
        loop.add_callback_threadsafe(self._drain_soon)

    def _drain_soon(self) -> None:
        """(I/O thread) Run the queued hand-overs in order, including those queued meanwhile."""
        while True:
            with self._soon_lock:
                if not self._soon:
                    self._soon_scheduled = False
                    return
                batch = list(self._soon)
                self._soon.clear()
            for fn in batch:
                try:
                    fn()
                except Exception:
                    log.exception("error in a callback on the AMQP I/O thread (%s)", self.safe_url)

    def io_call(
        self,
        what: str,
        fn: Callable[[Future[T]], None],
        *,
        wait_ready: bool = True,
        timeout: float | None = None,
    ) -> T:
        """Run ``fn(future)`` on the I/O thread and wait for the future (synchronous operation)."""
        self.check_not_io_thread(what)
        timeout = self.op_timeout if timeout is None else timeout
        if wait_ready:
            self.wait_ready_for(what, timeout)
        fut: Future[T] = Future()

        def start() -> None:
            try:
                fn(fut)
            except Exception as exc:
                resolve(fut, exc=exc)

        with self._track(fut):
            self.call_soon(start)
            try:
                return fut.result(timeout)
            except FutureTimeout:
                raise TransportError(
                    f"{what}: no answer from {self.safe_url} within {timeout:.0f} s"
                ) from None

    @contextlib.contextmanager
    def _track(self, fut: Future[Any]) -> Iterator[None]:
        with self.state_lock:
            self._sync_futs.add(fut)
        try:
            yield
        finally:
            with self.state_lock:
                self._sync_futs.discard(fut)

    def _fail_sync_waits(self, why: str) -> None:
        with self.state_lock:
            waiting = list(self._sync_futs)
        for fut in waiting:  # nobody will answer them any more
            resolve(fut, exc=ConnectionLost(why))

    def wait_ready_for(self, what: str, timeout: float) -> None:
        """Return once connected; raise ``TransportError`` if ``what`` cannot run (not connected
        yet, closed, or still reconnecting after ``timeout`` seconds)."""
        if not self.started:
            raise TransportError(f"{what}: not connected; call connect() first")
        if self.closing:
            raise ConnectionLost(f"{what}: the transport is closed")
        if self.ready.is_set():
            return
        # Reconnecting: wait for it, but give up as soon as close() is called (e.g. on SIGTERM
        # while the broker is down), not only after ``timeout``.
        deadline = time.monotonic() + timeout
        while not self.ready.wait(min(0.2, max(0.0, deadline - time.monotonic()))):
            if self.closing:
                raise ConnectionLost(f"{what}: the transport was closed while reconnecting")
            if time.monotonic() >= deadline:
                raise ConnectionLost(f"{what}: not connected to {self.safe_url} (reconnecting)")

    # ------------------------------------------------------------------ connect / reconnect
    def connect(self) -> None:
        with self._connect_lock:
            if self.closed or self.closing:
                raise TransportError("this transport was closed; create a new one")
            if self.started:
                return
            self._start_threads()
            deadline = time.monotonic() + self._connect_timeout
            last: BaseException | None = None
            while not self.closing:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    self._establish(remaining)
                    last = None
                    break
                except AUTH_ERRORS as exc:
                    last = exc
                    break  # retrying cannot fix credentials
                except Exception as exc:
                    last = exc
                    if tls_verification_failed(exc):
                        break  # nor a certificate this client refuses
                    if not self._retry_refused and unreachable(exc):
                        break  # a one-shot command: say at once that nothing listens there
                    # close() from another thread (or a signal handler) cuts the pause short.
                    self._close_event.wait(min(0.5, max(0.0, deadline - time.monotonic())))
            with self.state_lock:
                # Decided under the lock close() takes: either close() sees a started transport
                # and closes it fully, or this connect gives up.
                abandoned = self.closing
                if not abandoned and last is None and self.conn is not None:
                    self.started = True
                    self.ready.set()
            if abandoned:
                self._abandon_connect()
                raise TransportError(f"connecting to {self.safe_url} abandoned: the transport was closed")
            if last is not None or self.conn is None:
                self.stop_threads(1.0)
                raise connect_failure(last, self._url, self._connect_timeout)
            log.info("connected to %s as %r", self.safe_url, self.name)

    def _abandon_connect(self) -> None:
        """(connect(), after close() was called meanwhile) Close a connection that opened in the
        meantime, then stop the threads."""

        def close_conn() -> None:
            conn = self.conn
            if conn is not None and conn.is_open:
                conn.close(reply_text="sustainml: closed while connecting")

        with contextlib.suppress(ConnectionLost):
            self.call_soon(close_conn)  # runs before the loop stops (callbacks run in order)
        self.stop_threads(1.0)
        self.closed = True
        log.info("connecting to %s abandoned: the transport was closed", self.safe_url)

    def _start_threads(self) -> None:
        loop = IOLoop()
        with self._soon_lock:  # hand-overs left by a stopped loop never run: start clean
            self._soon.clear()
            self._soon_scheduled = False
        self._ioloop = loop
        self._io_thread = threading.Thread(
            target=self._io_main, args=(loop,), name=f"{self.name}-amqp-io", daemon=True
        )
        self._io_thread.start()
        self._maint = ThreadPoolExecutor(1, thread_name_prefix=f"{self.name}-amqp-maint")
        self._timers = ThreadPoolExecutor(1, thread_name_prefix=f"{self.name}-amqp-timer")

    def stop_threads(self, timeout: float) -> None:
        loop, thread = self._ioloop, self._io_thread
        if loop is not None and thread is not None and thread.is_alive():
            loop.add_callback_threadsafe(loop.stop)
            thread.join(timeout)
            if thread.is_alive():
                log.warning("AMQP I/O thread did not stop within %.1f s", timeout)
        self._io_thread = None
        self._io_ident = None
        self._fail_sync_waits("the transport was closed")
        for pool in (self._maint, self._timers):
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)

    def _establish(self, timeout: float) -> None:
        """Open a connection and its publish channel (I/O thread does the work, we wait)."""
        fut: Future[None] = Future()
        abandoned = threading.Event()

        def start() -> None:
            def on_open(conn: SelectConnection) -> None:
                if abandoned.is_set() or self.closing:
                    conn.close()
                    return
                conn.add_on_connection_blocked_callback(shielded(self._on_blocked))
                conn.add_on_connection_unblocked_callback(shielded(self._on_unblocked))
                with self.state_lock:
                    self.generation += 1
                    self.conn = conn
                    self._lost = False
                self._conn_closed_event.clear()
                self._events.connection_opened(conn, lambda: resolve(fut, None))

            def on_open_error(_conn: SelectConnection, err: BaseException) -> None:
                resolve(fut, exc=err)

            def on_close(conn: SelectConnection, reason: BaseException) -> None:
                resolve(fut, exc=ConnectionLost(f"closed while opening: {close_reason(reason)}"))
                if conn is self.conn:
                    self._on_connection_closed(conn, reason)

            params = self._params_list[self._next_host % len(self._params_list)]
            self._next_host += 1  # the next attempt (after a failure or a loss) tries another node
            SelectConnection(
                params,
                on_open_callback=shielded(on_open, fut),
                on_open_error_callback=shielded(on_open_error),
                on_close_callback=shielded(on_close),
                custom_ioloop=self._ioloop,
            )

        with self._track(fut):
            self.call_soon(start)
            try:
                fut.result(timeout)
                return
            except FutureTimeout:
                abandoned.set()

        def abandon() -> None:
            # Opened but its publish channel never came up: drop it (on_open closes later ones).
            conn = self.conn
            if conn is not None and conn.is_open:
                conn.close()

        self.call_soon(abandon)
        raise TimeoutError(f"no connection within {timeout:.1f} s")

    def _on_blocked(self, _conn: SelectConnection, frame: Any) -> None:
        """(I/O thread) connection.blocked: a resource alarm; publishes wait until it clears."""
        reason = getattr(getattr(frame, "method", None), "reason", "") or "resource alarm"
        self._blocked_since = time.monotonic()
        log.warning(
            "broker %s blocked publishing (%s); %d publishes wait for it to clear (up to %.0f s)",
            self.safe_url,
            reason,
            self._events.publishes_waiting(),
            BLOCKED_CONNECTION_TIMEOUT,
        )

    def _on_unblocked(self, _conn: SelectConnection, _frame: Any) -> None:
        since, self._blocked_since = self._blocked_since, None
        waited = time.monotonic() - since if since is not None else 0.0
        log.warning("broker %s unblocked publishing after %.1f s", self.safe_url, waited)

    def _on_connection_closed(self, conn: SelectConnection, reason: BaseException) -> None:
        """(I/O thread) The current connection is gone, expectedly or not."""
        self.conn = None
        self._blocked_since = None
        self._events.connection_lost(
            ConnectionLost(f"connection to {self.safe_url} lost: {close_reason(reason)}")
        )
        with self.state_lock:
            self._lost = True
            self.ready.clear()
            if self.closing:
                self._conn_closed_event.set()
                return
            log.warning(
                "connection to %s lost: %s", self.safe_url, scrub(close_reason(reason), self.password)
            )
            self._conn_closed_event.set()
            if self.started and not self._reconnecting and self._maint is not None:
                self._reconnecting = True
                self._maint.submit(self._reconnect_loop)

    def _reconnect_loop(self) -> None:
        """(maintenance thread) Reconnect with exponential backoff + jitter, then restore."""
        delay = BACKOFF_INITIAL
        attempt = 0
        last = "connection lost"
        while not self.closing:
            attempt += 1
            sleep = delay * random.uniform(0.5, 1.0)  # jitter: replicas do not reconnect in lockstep
            log.warning(
                "reconnecting to %s in %.1f s (attempt %d; last error: %s)",
                self.safe_url,
                sleep,
                attempt,
                last,
            )
            if self._close_event.wait(sleep):
                break
            delay = min(delay * 2, BACKOFF_MAX)
            try:
                self._establish(max(self._connect_timeout, 2.0))
                generation = self.generation
                self._events.restore()
            except Exception as exc:
                last = scrub(describe(exc), self.password)
                self._drop_connection()  # half-restored: start over on a fresh connection
                continue
            with self.state_lock:
                if not self._lost and self.generation == generation and not self.closing:
                    self._reconnecting = False
                    self.ready.set()
                    log.warning("reconnected to %s after %d attempt(s)", self.safe_url, attempt)
                    return
            last = "connection lost again while restoring"
        with self.state_lock:
            self._reconnecting = False

    def _drop_connection(self) -> None:
        """(maintenance thread) Close the current connection, if any, and wait for it to go."""

        def close() -> None:
            conn = self.conn
            if conn is not None and not conn.is_closed and not conn.is_closing:
                conn.close(reply_text="sustainml: restore failed, reconnecting")

        try:
            self.call_soon(close)
        except ConnectionLost:
            return
        self._conn_closed_event.wait(5.0)

    def submit_maint(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the maintenance thread (dropped once closing)."""
        if self._maint is None or self.closing:
            return
        try:
            self._maint.submit(fn)
        except RuntimeError:
            log.debug("maintenance pool closed; dropping %r", fn)

    # ------------------------------------------------------------------ timers
    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        if self.closing or not self.started:
            log.debug("call_later on a closed transport: dropped %r", fn)
            return

        def run() -> None:
            try:
                fn()
            except Exception:
                log.exception("call_later callback %r failed", fn)

        def fire() -> None:
            if self.closing or self._timers is None:
                return
            try:
                self._timers.submit(run)
            except RuntimeError:
                log.debug("timer pool closed; dropped %r", fn)

        def schedule() -> None:
            if self._ioloop is not None:
                self._ioloop.call_later(max(0.0, delay), fire)

        try:
            self.call_soon(schedule)
        except ConnectionLost:
            log.debug("call_later on a closed transport: dropped %r", fn)

    # ------------------------------------------------------------------ shutdown
    def begin_close(self) -> bool:
        """Mark the transport closing; False when it was closing already. A transport that never
        finished connecting is closed at once: a ``connect`` retrying on another thread (or a
        synchronous wait) gives up now instead of after its timeout."""
        with self.state_lock:
            if self.closing:
                return False
            self.closing = True
            if not self.started:
                self.closed = True
                self._close_event.set()
                waiting = list(self._sync_futs)
                for fut in waiting:
                    resolve(fut, exc=ConnectionLost("the transport was closed while connecting"))
                return True
        self._close_event.set()
        return True

    def shut_down(self, deadline: float) -> None:
        """Flush the callbacks handed to the I/O thread (acks, publishes), close the connection,
        then stop the threads."""
        flushed = threading.Event()
        try:
            self.call_soon(flushed.set)
            flushed.wait(max(0.5, deadline - time.monotonic()))

            def close_conn() -> None:
                conn = self.conn
                if conn is not None and not conn.is_closed and not conn.is_closing:
                    conn.close()
                else:
                    self._conn_closed_event.set()

            self.call_soon(close_conn)
            if not self._conn_closed_event.wait(max(1.0, deadline - time.monotonic())):
                log.warning("close: connection to %s did not close cleanly in time", self.safe_url)
        except ConnectionLost:
            pass
        self.stop_threads(max(1.0, deadline - time.monotonic()))
