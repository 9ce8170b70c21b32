"""
A DynamoDB endpoint for the benchmarks that answers Scans without doing a server's work, so that clients are measured
rather than the local server.

The local DynamoDB server (dynalite, one Node.js thread) serves about 12,000 items/s of ~1 KB, whatever the number of
clients: below what one Python client can decode. Real DynamoDB spreads a parallel scan over many servers. This
server takes the server out of the measurement in two ways:

* **recorded tables** (any table name): the first Scan with a given table, segment, segment count, ``Limit`` and
  ``ExclusiveStartKey`` goes on to the real server (``--upstream``), and its answer is kept byte for byte; every
  later identical Scan gets those bytes back at once. Every other operation (DescribeTable, ...) goes on to the real
  server each time. A benchmark records a table once (a warm-up scan of each shape it will use), then every client
  reads exactly the pages dynalite wrote, at memory speed.
* **synthetic tables** ``synthetic-{items}``, e.g. ``synthetic-1000000``: pages of sample items (the mixed-type
  items of :mod:`devtools.sample_data`, 1,500 per page like a 1 MB page) built once from a few templates and served
  for any item count without any real server, so the memory benchmark can export a million items without loading
  them first. Items repeat from page to page (``pk`` included); ``Count``, segments and ``LastEvaluatedKey`` are as
  DynamoDB would give them.

``python -m benchmarks.replay_server --upstream http://127.0.0.1:PORT`` prints its endpoint URL and serves until
SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import re
import signal
import sys
import uuid
from typing import Any
from urllib.parse import urlsplit

import orjson
from boto3.dynamodb.types import TypeSerializer

from devtools.dynamodb_proxy import HttpMessage, read_http_message
from devtools.sample_data import sample_item

#: Items per synthetic page: what dynalite puts in one 1 MB page of the benchmark's ~1 KB items.
SYNTHETIC_ITEMS_PER_PAGE = 1500
#: Distinct synthetic pages; page ``n`` is built from template ``n % SYNTHETIC_TEMPLATES``.
SYNTHETIC_TEMPLATES = 4
SYNTHETIC_PADDING = 500

_SYNTHETIC_TABLE = re.compile(r"^synthetic-(\d+)$")
_KEY_IGNORED = ("ConsistentRead", "ReturnConsumedCapacity")
_JSON_HEADERS = [(b"Content-Type", b"application/x-amz-json-1.0")]
_Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def to_wire(value: Any) -> Any:
    """The JSON-ready wire shape of client-shape AttributeValues: ``B`` and ``BS`` values as base64 text."""
    if isinstance(value, dict):
        return {name: to_wire(nested) for name, nested in value.items()}
    if isinstance(value, list):
        return [to_wire(nested) for nested in value]
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    return value


def _response(status: bytes, body: bytes) -> bytes:
    return HttpMessage(
        b"HTTP/1.1 " + status, [*_JSON_HEADERS, (b"x-amzn-RequestId", uuid.uuid4().hex.encode())], body
    ).encode()


def _error(code: str, message: str) -> bytes:
    body = orjson.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": message})
    return _response(b"400 Bad Request", body)


class SyntheticTables:
    """Scan and DescribeTable answers of the ``synthetic-{items}`` tables, built from a few template pages."""

    def __init__(self, items_per_page: int = SYNTHETIC_ITEMS_PER_PAGE, templates: int = SYNTHETIC_TEMPLATES) -> None:
        serializer = TypeSerializer()
        self.items_per_page = items_per_page
        self._templates = [
            [
                orjson.dumps(
                    to_wire(
                        {
                            name: serializer.serialize(value)
                            for name, value in sample_item(
                                template * items_per_page + number, padding=SYNTHETIC_PADDING
                            ).items()
                        }
                    )
                )
                for number in range(items_per_page)
            ]
            for template in range(templates)
        ]
        self._bodies: dict[tuple[int, int], bytes] = {}

    @staticmethod
    def item_count(table_name: str) -> int | None:
        """The item count of a synthetic table's name, or ``None`` for any other name."""
        match = _SYNTHETIC_TABLE.match(table_name)
        return int(match.group(1)) if match else None

    def _page_items(self, page: int, count: int) -> bytes:
        key = (page % len(self._templates), count)
        if key not in self._bodies:
            self._bodies[key] = b",".join(self._templates[key[0]][:count])
        return self._bodies[key]

    def scan(self, request: dict[str, Any], item_count: int) -> bytes:
        """
        The answer to one Scan: page ``segment``, ``segment + total``, ... of the table, as DynamoDB pages it.

        Pages hold :attr:`items_per_page` items, or ``Limit`` if the request gives a smaller one.
        """
        segment = int(request.get("Segment", 0))
        total = int(request.get("TotalSegments", 1))
        page_size = min(int(request.get("Limit", self.items_per_page)), self.items_per_page)
        pages = max(1, -(-item_count // page_size))
        start_key = request.get("ExclusiveStartKey")
        page = int(start_key["pk"]["S"].split("#")[1]) if start_key else segment
        count = 0 if page >= pages else min(page_size, item_count - page * page_size)
        items = self._page_items(page, count) if count else b""
        body = b'{"Count":%d,"ScannedCount":%d,"Items":[%b]' % (count, count, items)
        following = page + total
        if following < pages:
            body += b',"LastEvaluatedKey":{"pk":{"S":"page#%09d"}}' % following
        return _response(b"200 OK", body + b"}")

    @staticmethod
    def describe(table_name: str, item_count: int) -> bytes:
        table = {
            "TableName": table_name,
            "TableStatus": "ACTIVE",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "ItemCount": item_count,
            "TableSizeBytes": item_count * 1000,
            "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"},
            "TableArn": f"arn:aws:dynamodb:us-east-1:000000000000:table/{table_name}",
        }
        return _response(b"200 OK", orjson.dumps({"Table": table}))


class ReplayServer:
    """
    The asyncio server: recorded Scans from memory, synthetic tables built here, everything else sent upstream.

    :ivar endpoint_url: where to send requests, ``http://127.0.0.1:PORT``
    :ivar recorded: Scan answers kept, by request
    :ivar hits: Scans answered from memory; ``misses``: Scans sent upstream (and recorded)
    """

    def __init__(self, upstream_url: str | None) -> None:
        self.upstream_address: tuple[str, int] | None = None
        if upstream_url:
            upstream = urlsplit(upstream_url)
            self.upstream_address = (upstream.hostname or "127.0.0.1", upstream.port or 80)
        self.synthetic = SyntheticTables()
        self.recorded: dict[bytes, bytes] = {}
        self.hits = 0
        self.misses = 0
        self.endpoint_url = ""

    async def start(self, port: int = 0) -> asyncio.Server:
        server = await asyncio.start_server(self._serve_connection, "127.0.0.1", port)
        self.endpoint_url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        return server

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: _Connection | None = None
        try:
            while (request := await read_http_message(reader)) is not None:
                operation = (request.header(b"x-amz-target") or b"").decode("latin-1").rpartition(".")[2]
                answer = self._answer_locally(operation, request.body)
                if answer is None:
                    upstream, answer = await self._forward(upstream, operation, request)
                writer.write(answer)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            if upstream is not None:
                upstream[1].close()

    async def _forward(
        self, upstream: _Connection | None, operation: str, request: HttpMessage
    ) -> tuple[_Connection | None, bytes]:
        """Send ``request`` to the real server; keep its answer if it is a successful Scan."""
        if self.upstream_address is None:
            return upstream, _error("ResourceNotFoundException", "The replay server has no upstream server.")
        if upstream is None:
            upstream = await asyncio.open_connection(*self.upstream_address)
        upstream[1].write(request.encode())
        await upstream[1].drain()
        response = await read_http_message(upstream[0])
        if response is None:
            raise ConnectionError("the upstream server closed the connection")
        answer = response.encode()
        if operation == "Scan" and response.start_line.split(b" ")[1] == b"200":
            self.recorded[_scan_key(request.body)] = answer
            self.misses += 1
        return upstream, answer

    def _answer_locally(self, operation: str, body: bytes) -> bytes | None:
        if operation not in ("Scan", "DescribeTable"):
            return None
        request = orjson.loads(body)
        item_count = self.synthetic.item_count(str(request.get("TableName", "")))
        if item_count is not None:
            if operation == "Scan":
                return self.synthetic.scan(request, item_count)
            return self.synthetic.describe(request["TableName"], item_count)
        if operation == "Scan":
            answer = self.recorded.get(_scan_key(body))
            if answer is not None:
                self.hits += 1
            return answer
        return None


def _scan_key(body: bytes) -> bytes:
    request = orjson.loads(body)
    for name in _KEY_IGNORED:
        request.pop(name, None)
    return orjson.dumps(request, option=orjson.OPT_SORT_KEYS)


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM; print the endpoint URL on the first line of standard output."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.replay_server")
    parser.add_argument("--upstream", default=None, help="the real server, http://HOST:PORT (recorded tables)")
    parser.add_argument("--port", type=int, default=0)
    arguments = parser.parse_args(argv)
    replay = ReplayServer(arguments.upstream)

    async def serve() -> None:
        server = await replay.start(arguments.port)
        print(replay.endpoint_url, flush=True)
        stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signal_number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signal_number, stopped.set)
        await stopped.wait()
        server.close()
        print(f"replay: {replay.hits} hits, {replay.misses} recorded", file=sys.stderr, flush=True)

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
