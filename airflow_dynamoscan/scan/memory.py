"""
The memory budget of a scan or export: how many pages it holds at once, and how large a Parquet row group grows.

What a whole-table export holds beyond the process's own start-up memory is, almost all of it, Scan pages: a
1 MB page as ``orjson`` parses it is about 10 MB of Python objects (:data:`PAGE_MEMORY_MB` counts its body too).

With fast decoding (:func:`~airflow_dynamoscan.scan.decode.install_fast_decoding`), the workers of a parallel
scan only read: each holds at most one page's body (:data:`BODY_MEMORY_MB`) until the caller's side parses it
(:class:`ParseHandoff`), one page ahead of the page the caller is consuming, so the scan holds
:data:`CALLER_PAGES` parsed pages however many workers read. Without it, botocore parses each page on the worker
that read it, and each worker holds a parsed page, as do the pages waiting for the caller.

``max_memory_mb`` (default :data:`DEFAULT_MAX_MEMORY_MB`) bounds the sum, and a Parquet part's current row group:
a quarter of the budget (at most 64 MiB) for the row group, the rest for pages, which caps the workers and the
pages in flight. Fewer workers read less at once: against a distant endpoint (latency per request) throughput
falls with them; on a near one the process is bound by its CPU (decoding and encoding) well before eight workers.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from airflow_dynamoscan.exceptions import InvalidScanArgumentError

#: Memory of one full (1 MB) Scan page held in the wire shape: its parsed objects and its body, in MB.
PAGE_MEMORY_MB = 12

#: Memory of one worker of a scan whose pages the caller's side parses, in MB: the body of a full page it has read
#: (about 1.5 MB), botocore's copy of it while the response is read, and the connection's buffers.
BODY_MEMORY_MB = 4

#: Parsed pages of a scan whose pages the caller's side parses: the one the caller consumes, and the one ahead.
CALLER_PAGES = 2

#: The budget when the caller gives none: with Airflow and the provider loaded (~140 MB), an export stays
#: within 200 MB.
DEFAULT_MAX_MEMORY_MB = 64

#: The smallest budget: one worker, the pages the caller's side holds, and a small row group.
MIN_MAX_MEMORY_MB = 32

_MAX_ROW_GROUP_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class MemoryBudget:
    """
    What a budget of ``max_memory_mb`` allows.

    :param max_memory_mb: the budget, MB
    """

    max_memory_mb: int = DEFAULT_MAX_MEMORY_MB

    @property
    def row_group_bytes(self) -> int:
        """Arrow data a Parquet part gathers before writing it as one row group."""
        return min(_MAX_ROW_GROUP_BYTES, self.max_memory_mb * 1024 * 1024 // 4)

    @property
    def _pages_mb(self) -> int:
        return self.max_memory_mb - self.row_group_bytes // (1024 * 1024)

    @property
    def pages(self) -> int:
        """Full parsed Scan pages the budget holds at once (at least 2)."""
        return max(2, self._pages_mb // PAGE_MEMORY_MB)

    def max_workers(self, workers: int, *, parsed_by_caller: bool = True) -> int:
        """
        The workers of a parallel scan within the budget, at most ``workers``: each holding a body beside the
        caller's pages (``parsed_by_caller``, fast decoding), or each holding a parsed page, leaving two.
        """
        if parsed_by_caller:
            allowed = (self._pages_mb - CALLER_PAGES * PAGE_MEMORY_MB) // BODY_MEMORY_MB
        else:
            allowed = self.pages - 2
        return max(1, min(workers, allowed))

    def memory_for_workers(self, workers: int, *, parsed_by_caller: bool = True) -> int:
        """The smallest ``max_memory_mb``, at least this budget's, whose :meth:`max_workers` allows ``workers``."""
        memory = self.max_memory_mb
        while MemoryBudget(memory).max_workers(workers, parsed_by_caller=parsed_by_caller) < workers:
            memory += 8
        return memory

    def pages_in_flight(self, workers: int, *, parsed_by_caller: bool = True) -> int:
        """
        What may wait for the caller (at least 1): a message per worker (``parsed_by_caller``: bodies to parse
        and pages, of which at most one is parsed), else the parsed pages left beside those ``workers`` and the
        caller hold.
        """
        if parsed_by_caller:
            return max(1, workers)
        return max(1, min(workers, self.pages - workers - 1))


def memory_budget(max_memory_mb: object, table_name: str | None = None) -> MemoryBudget:
    """
    Return the budget of ``max_memory_mb`` (``None``: :data:`DEFAULT_MAX_MEMORY_MB`).

    :param table_name: the table, named in the error message
    :raises InvalidScanArgumentError: not an integer of at least :data:`MIN_MAX_MEMORY_MB`, naming the table, the
        parameter and what is allowed.
    """
    if max_memory_mb is None:
        return MemoryBudget()
    if not isinstance(max_memory_mb, int) or isinstance(max_memory_mb, bool) or max_memory_mb < MIN_MAX_MEMORY_MB:
        where = f"Table {table_name!r}: " if table_name else ""
        raise InvalidScanArgumentError(
            f"{where}max_memory_mb={max_memory_mb!r} is not allowed; it must be None (the default, "
            f"{DEFAULT_MAX_MEMORY_MB}) or an integer >= {MIN_MAX_MEMORY_MB} (megabytes for pages in flight and "
            f"Parquet row groups)."
        )
    return MemoryBudget(max_memory_mb)


_POLL_SECONDS = 0.05


class ParseHandoffClosed(Exception):
    """Raised to a worker waiting for its page to be parsed when the scan it reads for is closed."""


class ParseRequest:
    """
    The body of a page a worker has read, to be parsed on the caller's thread; the worker waits for the result.

    :param worker: the number of the worker that read it
    :param body: the HTTP body
    :param parse: turns the body into the response's values
    """

    __slots__ = ("_body", "_done", "_error", "_parse", "_result", "worker")

    def __init__(self, worker: int, body: bytes, parse: Callable[[bytes], Any]) -> None:
        self.worker = worker
        self._body = body
        self._parse = parse
        self._done = threading.Event()
        self._result: Any = None
        self._error: BaseException | None = None

    def run(self) -> None:
        """Parse the body (on the calling thread) and hand the result, or the error, to the waiting worker."""
        try:
            self._result = self._parse(self._body)
        except Exception as error:  # noqa: BLE001 - the worker raises it as its own
            self._error = error
        except BaseException:
            # An interrupt of the caller's thread (Ctrl-C, a task being terminated) is the caller's: it ends the
            # scan there, and the worker just stops.
            self._error = ParseHandoffClosed()
            raise
        finally:
            self._body = b""
            self._done.set()

    def result(self, stopped: threading.Event) -> Any:
        """
        Wait for :meth:`run` and return what it parsed.

        :raises ParseHandoffClosed: ``stopped`` was set first.
        :raises Exception: the error parsing raised.
        """
        while not self._done.wait(_POLL_SECONDS):
            if stopped.is_set():
                raise ParseHandoffClosed
        if self._error is not None:
            raise self._error
        return self._result


@dataclass(frozen=True)
class ParseHandoff:
    """
    Where the workers of one parallel scan send the bodies they read, to be parsed on the caller's thread.

    A parsed page is several times the size of its body (a 1 MB page is about 10 MB of Python objects). Parsed
    by the workers, each worker would hold a parsed page while it waits to hand it over, and each thread's
    allocations would stay in an allocator arena of its own; parsed by the caller, one page ahead of what it
    consumes, a scan holds about two parsed pages however many workers read, and each worker at most one body.
    Throughput is the same: parsing holds the interpreter's lock on whichever thread it runs.

    :param deliver: puts a :class:`ParseRequest` where the caller's side takes it; returns ``False`` if the scan
        was closed
    :param stopped: set when the scan is closed
    """

    deliver: Callable[[ParseRequest], bool]
    stopped: threading.Event


_this_thread = threading.local()


@contextlib.contextmanager
def parsing_on_caller(handoff: ParseHandoff, worker: int) -> Iterator[None]:
    """Make the pages this thread (worker number ``worker``) reads with fast decoding be parsed via ``handoff``."""
    _this_thread.handoff, _this_thread.worker = handoff, worker
    try:
        yield
    finally:
        _this_thread.handoff = None


def parse_body(body: bytes, parse: Callable[[bytes], Any]) -> Any:
    """
    Return ``parse(body)``: in a worker inside :func:`parsing_on_caller`, parsed on the caller's thread (this one
    waits); anywhere else, here and now.

    :raises ParseHandoffClosed: the scan was closed while waiting.
    """
    handoff: ParseHandoff | None = getattr(_this_thread, "handoff", None)
    if handoff is None:
        return parse(body)
    request = ParseRequest(_this_thread.worker, body, parse)
    del body
    if not handoff.deliver(request):
        raise ParseHandoffClosed
    return request.result(handoff.stopped)
