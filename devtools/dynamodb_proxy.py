"""
An HTTP proxy in front of a DynamoDB endpoint that adds latency, throttles and drops connections, on purpose.

Used by the benchmarks (a fixed delay per request) and by fault-injection tests of retries. Start it with
:func:`running_proxy`, which runs an asyncio server on a free port of 127.0.0.1 in a background thread and yields
a :class:`DynamoDBProxy`::

    with running_proxy(dynalite_endpoint, latency=0.02, throttle_fraction=0.1, seed=7) as proxy:
        client = boto3.client("dynamodb", endpoint_url=proxy.endpoint_url, ...)
        ...
        assert proxy.stats.throttled == proxy.stats.operation("Scan").throttled

Each request is decided on by one draw of a seeded random generator, in the order the requests arrive, so a serial
client sees the same faults on every run with the same ``seed``:

* **dropped** (``drop_fraction``): the proxy closes the connection without an answer, so botocore raises a
  connection error (retried by botocore's retry modes). By default the request never reaches the server; with
  ``drop_after_forward=True`` it does, and only its answer is lost, as when a network fails after a write.
* **throttled** (``throttle_fraction``): the proxy answers HTTP 400 with DynamoDB's JSON error body, by default
  ``ProvisionedThroughputExceededException``, which botocore reports as that error code.
* **forwarded**: everything else reaches the server and its answer comes back unchanged.

The latency is an ``asyncio.sleep`` before each answer (also before throttling answers): it costs no CPU, so a
benchmark measures the client, not the proxy. ``python -m devtools.dynamodb_proxy --upstream URL --latency-ms 20``
runs the same proxy in its own process, e.g. to keep its CPU time out of a measured client's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal
import sys
import threading
import uuid
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

#: The error code a throttled request gets unless ``throttle_error`` says otherwise.
DEFAULT_THROTTLE_ERROR = "ProvisionedThroughputExceededException"

_ERROR_TYPE_PREFIX = "com.amazonaws.dynamodb.v20120810#"
_TARGET_HEADER = b"x-amz-target"
_MAX_HEADER_BYTES = 64 * 1024


class ProxyError(RuntimeError):
    """The proxy could not start, or was given options it cannot honour."""


@dataclass
class OperationStats:
    """
    What the proxy did with the requests of one operation (or of all of them).

    :ivar requests: requests received
    :ivar forwarded: requests sent on to the server (a request dropped after forwarding counts here too)
    :ivar throttled: requests answered with the throttling error
    :ivar dropped: connections closed instead of answering
    """

    requests: int = 0
    forwarded: int = 0
    throttled: int = 0
    dropped: int = 0


@dataclass
class ProxyStats(OperationStats):
    """
    Counters of a running proxy, in total and per ``X-Amz-Target`` operation (``"Scan"``, ``"BatchWriteItem"``...).

    Requests without an ``X-Amz-Target`` header (e.g. the server's health check ``GET /``) count under ``""``.
    The counters change while the proxy runs; :meth:`snapshot` copies them at one moment.

    :ivar by_operation: the counters of each operation seen, by operation name
    """

    by_operation: dict[str, OperationStats] = field(default_factory=dict)

    def operation(self, name: str) -> OperationStats:
        """Return the counters of operation ``name``; all zero if the proxy has not seen it."""
        return self.by_operation.get(name, OperationStats())

    def snapshot(self) -> ProxyStats:
        """Return a copy of the counters that later requests do not change."""
        return ProxyStats(
            requests=self.requests,
            forwarded=self.forwarded,
            throttled=self.throttled,
            dropped=self.dropped,
            by_operation={
                name: OperationStats(stats.requests, stats.forwarded, stats.throttled, stats.dropped)
                for name, stats in self.by_operation.items()
            },
        )

    def record(self, operation: str, outcome: str) -> None:
        """Add one to ``outcome`` (``"requests"``, ``"forwarded"``, ...), in total and for ``operation``."""
        per_operation = self.by_operation.setdefault(operation, OperationStats())
        for stats in (self, per_operation):
            setattr(stats, outcome, getattr(stats, outcome) + 1)


@dataclass
class HttpMessage:
    """
    One HTTP/1.1 request or response, its body read whole.

    :ivar start_line: the request line (``POST / HTTP/1.1``) or status line (``HTTP/1.1 200 OK``)
    :ivar headers: ``(name, value)`` pairs in the order received
    :ivar body: the body, de-chunked
    """

    start_line: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        """Return the value of the header ``name`` (lower case), or ``None``."""
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    def encode(self) -> bytes:
        """Return the message as bytes to send, with a ``Content-Length`` header for the body."""
        lines = [self.start_line]
        lines.extend(
            key + b": " + value
            for key, value in self.headers
            if key.lower() not in (b"content-length", b"transfer-encoding")
        )
        lines.append(b"Content-Length: " + str(len(self.body)).encode())
        return b"\r\n".join(lines) + b"\r\n\r\n" + self.body


async def read_http_message(reader: asyncio.StreamReader) -> HttpMessage | None:
    """Read one HTTP/1.1 request or response; ``None`` when the peer closed the connection between messages."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as error:
        if not error.partial:
            return None
        raise
    if len(head) > _MAX_HEADER_BYTES:
        raise ProxyError(f"HTTP header of {len(head)} bytes is larger than {_MAX_HEADER_BYTES}")
    start_line, *header_lines = head[:-4].split(b"\r\n")
    headers = []
    for line in header_lines:
        key, _, value = line.partition(b":")
        headers.append((key.strip(), value.strip()))
    message = HttpMessage(start_line, headers, b"")
    if (message.header(b"transfer-encoding") or b"").lower() == b"chunked":
        chunks = []
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
        await reader.readuntil(b"\r\n")  # the empty trailer
        message.body = b"".join(chunks)
    else:
        message.body = await reader.readexactly(int(message.header(b"content-length") or 0))
    return message


def throttling_response(error_code: str = DEFAULT_THROTTLE_ERROR, message: str = "Rate of requests exceeds") -> bytes:
    """Return the raw HTTP response DynamoDB sends when it throttles: status 400 and its JSON error body."""
    body = (f'{{"__type":"{_ERROR_TYPE_PREFIX}{error_code}","message":"{message} (injected by the proxy)"}}').encode()
    return HttpMessage(
        b"HTTP/1.1 400 Bad Request",
        [
            (b"Content-Type", b"application/x-amz-json-1.0"),
            (b"x-amzn-RequestId", uuid.uuid4().hex.upper().encode()),
        ],
        body,
    ).encode()


class DynamoDBProxy:
    """
    A running proxy: send requests to :attr:`endpoint_url` instead of the server's.

    The fault options may be changed while it runs; they apply to the requests that arrive afterwards.

    :ivar endpoint_url: where to send requests, ``http://127.0.0.1:PORT``
    :ivar upstream_url: the server the requests go on to
    :ivar stats: counters of what the proxy did, see :class:`ProxyStats`
    :ivar latency: seconds added before each answer
    :ivar throttle_fraction: share of requests answered with ``throttle_error``, 0 to 1
    :ivar drop_fraction: share of requests whose connection is closed without an answer, 0 to 1
    :ivar throttle_error: the error code of throttled requests (``ProvisionedThroughputExceededException``,
        ``ThrottlingException``, ...)
    :ivar fault_operations: the operations that may be throttled or dropped (``None``: all); others are only
        delayed
    :ivar drop_after_forward: send a dropped request on to the server before closing the connection
    """

    def __init__(
        self,
        upstream_url: str,
        *,
        latency: float = 0.0,
        throttle_fraction: float = 0.0,
        drop_fraction: float = 0.0,
        seed: int | None = 0,
        throttle_error: str = DEFAULT_THROTTLE_ERROR,
        fault_operations: Collection[str] | None = None,
        drop_after_forward: bool = False,
    ) -> None:
        upstream = urlsplit(upstream_url)
        if upstream.scheme != "http" or not upstream.hostname or not upstream.port:
            raise ProxyError(f"upstream_url={upstream_url!r} is not allowed; it must be http://HOST:PORT.")
        if min(latency, throttle_fraction, drop_fraction) < 0 or throttle_fraction + drop_fraction > 1:
            raise ProxyError(
                f"latency={latency!r}, throttle_fraction={throttle_fraction!r}, drop_fraction={drop_fraction!r} "
                "are not allowed; each must be >= 0 and the two fractions must add up to at most 1."
            )
        self.upstream_url = upstream_url.rstrip("/")
        self._upstream_address = (upstream.hostname, upstream.port)
        self.latency = latency
        self.throttle_fraction = throttle_fraction
        self.drop_fraction = drop_fraction
        self.throttle_error = throttle_error
        self.fault_operations = None if fault_operations is None else frozenset(fault_operations)
        self.drop_after_forward = drop_after_forward
        self.stats = ProxyStats()
        self.endpoint_url = ""
        self._random = random.Random(seed)
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    def _decide(self, operation: str) -> str:
        if self.fault_operations is not None and operation not in self.fault_operations:
            return "forwarded"
        draw = self._random.random()
        if draw < self.drop_fraction:
            return "dropped"
        if draw < self.drop_fraction + self.throttle_fraction:
            return "throttled"
        return "forwarded"

    async def start(self, port: int = 0) -> None:
        """Listen on 127.0.0.1 (``port`` 0: a free one) and set :attr:`endpoint_url`."""
        self._server = await asyncio.start_server(self._serve_connection, "127.0.0.1", port, limit=_MAX_HEADER_BYTES)
        bound_port = self._server.sockets[0].getsockname()[1]
        self.endpoint_url = f"http://127.0.0.1:{bound_port}"

    async def stop(self) -> None:
        """Stop listening and close every open connection."""
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while (request := await read_http_message(reader)) is not None:
                target = request.header(_TARGET_HEADER) or b""
                operation = target.decode("latin-1").rpartition(".")[2]
                outcome = self._decide(operation)
                self.stats.record(operation, "requests")
                answer = b""
                if outcome == "forwarded" or (outcome == "dropped" and self.drop_after_forward):
                    if upstream is None:
                        upstream = await asyncio.open_connection(*self._upstream_address)
                    upstream, answer = await self._forward(upstream, request)
                    self.stats.record(operation, "forwarded")
                if outcome == "dropped":
                    self.stats.record(operation, "dropped")
                    return
                if outcome == "throttled":
                    answer = throttling_response(self.throttle_error)
                    self.stats.record(operation, "throttled")
                if self.latency:
                    await asyncio.sleep(self.latency)
                writer.write(answer)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            self._connections.discard(task)
            for stream_writer in (writer, upstream[1] if upstream else None):
                if stream_writer is not None:
                    stream_writer.close()

    async def _forward(
        self, upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter], request: HttpMessage
    ) -> tuple[tuple[asyncio.StreamReader, asyncio.StreamWriter], bytes]:
        for attempt in range(2):
            upstream_reader, upstream_writer = upstream
            try:
                upstream_writer.write(request.encode())
                await upstream_writer.drain()
                response = await read_http_message(upstream_reader)
                if response is not None:
                    return upstream, response.encode()
            except (ConnectionError, asyncio.IncompleteReadError):
                if attempt:
                    raise
            # The server closed an idle keep-alive connection: open a new one once.
            upstream_writer.close()
            upstream = await asyncio.open_connection(*self._upstream_address)
        raise ConnectionError(f"{self.upstream_url} closed the connection without an answer")


@contextlib.contextmanager
def running_proxy(
    upstream_url: str,
    *,
    latency: float = 0.0,
    throttle_fraction: float = 0.0,
    drop_fraction: float = 0.0,
    seed: int | None = 0,
    throttle_error: str = DEFAULT_THROTTLE_ERROR,
    fault_operations: Collection[str] | None = None,
    drop_after_forward: bool = False,
    port: int = 0,
) -> Iterator[DynamoDBProxy]:
    """
    Run a :class:`DynamoDBProxy` in front of ``upstream_url`` in a background thread for the ``with`` block.

    :param upstream_url: the DynamoDB endpoint, ``http://HOST:PORT``
    :param latency: seconds to wait before each answer (``0.02`` for 20 ms)
    :param throttle_fraction: share of requests answered with the throttling error, 0 to 1
    :param drop_fraction: share of requests whose connection is closed without an answer, 0 to 1
    :param seed: seed of the random draws; ``None`` for a different sequence on each run
    :param throttle_error: the error code of a throttled request
    :param fault_operations: operations that may be throttled or dropped, e.g. ``{"Scan"}``; ``None``: all
    :param drop_after_forward: let dropped requests reach the server; only their answers are lost
    :param port: the port to listen on; 0 picks a free one
    :raises ProxyError: invalid options, or the proxy could not start.
    """
    proxy = DynamoDBProxy(
        upstream_url,
        latency=latency,
        throttle_fraction=throttle_fraction,
        drop_fraction=drop_fraction,
        seed=seed,
        throttle_error=throttle_error,
        fault_operations=fault_operations,
        drop_after_forward=drop_after_forward,
    )
    loop = asyncio.new_event_loop()
    started = threading.Event()
    failure: list[BaseException] = []

    def serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(proxy.start(port))
        except BaseException as error:  # noqa: BLE001 - reported to the thread that waits for the start
            failure.append(error)
            started.set()
            return
        started.set()
        loop.run_forever()
        loop.run_until_complete(proxy.stop())
        loop.close()

    thread = threading.Thread(target=serve, name="dynamodb-proxy", daemon=True)
    thread.start()
    started.wait()
    if failure:
        raise ProxyError(f"The proxy in front of {upstream_url} could not start: {failure[0]}") from failure[0]
    try:
        yield proxy
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)


def main(argv: list[str] | None = None) -> int:
    """Run the proxy in the foreground until SIGTERM or Ctrl-C; print its endpoint URL on the first line."""
    parser = argparse.ArgumentParser(
        prog="python -m devtools.dynamodb_proxy", description="A DynamoDB proxy that adds latency, throttles and drops."
    )
    parser.add_argument("--upstream", required=True, help="the DynamoDB endpoint, http://HOST:PORT")
    parser.add_argument("--port", type=int, default=0, help="port of 127.0.0.1 to listen on (default: a free one)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="milliseconds added before each answer")
    parser.add_argument("--throttle-fraction", type=float, default=0.0)
    parser.add_argument("--drop-fraction", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args(argv)
    proxy = DynamoDBProxy(
        arguments.upstream,
        latency=arguments.latency_ms / 1000,
        throttle_fraction=arguments.throttle_fraction,
        drop_fraction=arguments.drop_fraction,
        seed=arguments.seed,
    )

    async def serve() -> None:
        await proxy.start(arguments.port)
        print(proxy.endpoint_url, flush=True)
        stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signal_number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signal_number, stopped.set)
        await stopped.wait()
        await proxy.stop()
        print(f"stats: {proxy.stats.snapshot()}", file=sys.stderr, flush=True)

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
