"""A bounded prefetch queue: a worker thread prepares item i + 1 (validate, preprocess) while item i runs.

The consumer sees the prepared items in input order. An exception raised by the input iterator or by
the preparation function reaches the consumer at the position where it happened (after the items
before it); when the consumer stops early (``close()``, ``break`` out of a generator that uses it),
the worker stops at its next step and is joined. This module imports the standard library only.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

THREAD_NAME = "cheartflow-prefetch"
_POLL_S = 0.05  # how often a blocked worker checks whether the consumer has stopped
_JOIN_S = 2.0  # how long close() waits for the worker (it may be blocked inside the caller's iterator)

_ITEM, _ERROR, _END = 0, 1, 2


class Prefetcher(Generic[T]):
    """Iterate ``prepare(i, item)`` over ``items`` on a worker thread, at most ``depth`` items ahead.

    Use it as an iterator inside ``with`` (or call ``close()``): the worker starts at construction.
    """

    def __init__(self, items: Iterable[Any], prepare: Callable[[int, Any], T], depth: int = 2,
                 name: str = THREAD_NAME):
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth must be an int >= 1, got {depth!r}")
        self._items = items
        self._prepare = prepare
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ worker side

    def _put(self, entry: tuple) -> bool:
        """Put unless the consumer has stopped; False when it has."""
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _work(self) -> None:
        try:
            iterator = iter(self._items)
            i = 0
            while not self._stop.is_set():
                try:
                    item = next(iterator)
                except StopIteration:
                    self._put((_END, None))
                    return
                if self._stop.is_set():
                    return
                prepared = self._prepare(i, item)
                if not self._put((_ITEM, prepared)):
                    return
                i += 1
        except BaseException as exc:
            self._put((_ERROR, exc))
        finally:
            self._items = None  # drop the caller's iterator reference from this thread

    # ------------------------------------------------------------------ consumer side

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        return self._unpack(*self._queue.get())

    def next_nowait(self, default: Any = None) -> Any:
        """The next prepared item if one is ready, else `default` (never blocks); raises like ``next()``."""
        if self._done:
            raise StopIteration
        try:
            entry = self._queue.get_nowait()
        except queue.Empty:
            return default
        return self._unpack(*entry)

    def _unpack(self, kind: int, payload: Any) -> Any:
        if kind == _ITEM:
            return payload
        self._done = True
        self._thread.join(timeout=_JOIN_S)
        if kind == _ERROR:
            raise payload
        raise StopIteration

    def close(self) -> None:
        """Stop the worker (it finishes the item it is preparing, then exits) and join it."""
        self._done = True
        self._stop.set()
        try:  # unblock a worker waiting on a full queue
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=_JOIN_S)
            if self._thread.is_alive():
                log.warning("prefetch worker still blocked inside the input iterator after %.1f s; "
                            "it is a daemon thread and exits when the iterator returns", _JOIN_S)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def __enter__(self) -> Prefetcher[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def prefetch(items: Iterable[Any], prepare: Callable[[int, Any], T], depth: int = 2) -> Iterator[T]:
    """Generator over ``prepare(i, item)`` with a worker thread ``depth`` items ahead; closing the generator
    stops and joins the worker. The worker starts on the first ``next()``, so an unstarted generator leaks nothing."""
    with Prefetcher(items, prepare, depth) as items_ready:
        yield from items_ready
