"""
Encoders that turn pages of items into the bytes of one export part.

The formats (:data:`FILE_FORMATS`), and what each keeps (docs/formats.md has the same table):

``dynamodb_json``
    One ``{"Item": {...}}`` per line holding AttributeValues, DynamoDB's own S3-export layout: fed items in
    botocore's client shape (scan with ``deserialize=False``); ``N`` values stay strings and ``B``/``BS`` values
    become base64 text. The only format that keeps everything: every type (``S`` vs ``N`` vs ``B``, sets vs
    lists), ``NULL`` vs a missing attribute, every digit. See :func:`needs_attribute_values`.
``jsonl``
    One JSON object per line, fed plain Python items. Numbers (``decimal.Decimal``, ``int``) are written as
    their exact text, any precision (``12345678901234567890.123456789`` appears verbatim, integers have no
    ``.0``), so ``json.loads(line, parse_float=Decimal, parse_int=Decimal)`` reads them back exactly; ``None``
    is ``null`` and a missing attribute is absent. What it loses: ``bytes`` become base64 text and sets sorted
    arrays, so binary reads back as a string and a set as a list.
``csv``
    A header, then one row per item (CRLF line ends, RFC 4180), with the export's schema
    (:mod:`~airflow_dynamoscan.export.schema`): the same columns in every part of the export, what does not fit
    in the extra column ``_extra``. Cells: strings as they are, numbers as exact text, booleans ``true``/``false``,
    ``bytes`` as base64, ``json`` columns and ``_extra`` as JSON text. What it loses: a cell is text, so its
    type is the column's (recorded in the manifest); in a ``string`` column an empty string, ``None`` and a
    missing attribute are all an empty cell; ``None`` and missing are empty cells in every column (a ``json``
    column writes ``""`` for an empty string, so there it is told apart); binary reads back as base64 text.
    A value that does not fit its column's type goes to ``_extra`` as JSON, so ``"42"`` in an ``int64`` column
    stays the string ``"42"``. Spreadsheet formulas: with ``csv_formula_escaping=True``, every header name and
    every ``string`` or ``binary`` cell that starts with ``=``, ``+``, ``-``, ``@``, a tab, a carriage return or
    ``'`` gets one ``'`` in front (so Excel and LibreOffice show it as text); a reader removes one leading ``'``
    from such cells to get the value back. Off by default, because it changes values that programs read.
``parquet``
    Written with ``pyarrow`` (``pip install 'airflow-dynamoscan[parquet]'``), one column per schema column plus
    ``_extra``: ``string``, ``int64``, ``decimal128(p, s)``, ``string`` (exact number text for ``number``,
    JSON text for ``json``), ``bool``, ``binary``, ``float64``. Numbers are never rounded. What it loses: ``None``
    and a missing attribute are both null; ``json`` columns and ``_extra`` hold JSON text (as ``jsonl``).

Compression: ``jsonl``, ``dynamodb_json`` and ``csv`` accept ``None`` (or ``"none"``) and ``"gzip"``
(:data:`TEXT_COMPRESSIONS`); ``parquet`` compresses inside the file and accepts ``"snappy"`` (the default,
also when ``None`` is given), ``"zstd"``, ``"gzip"`` and ``"none"`` (:data:`PARQUET_COMPRESSIONS`).

Part size: :meth:`PartEncoder.write_items` with ``max_bytes`` writes the items that keep the finished file within
``max_bytes`` and returns how many it wrote; a part without items always takes one, so a part is either within the
limit or holds a single item. The size is the file's, compressed: text formats count the bytes that reached the
file plus a bound of what gzip still holds (a sync flush measures it exactly when the bound is near the limit);
Parquet counts its written row groups plus a bound of the rows not yet written and of the footer (a row group is
written to measure it exactly when the bound is near the limit). Memory holds one page and, for Parquet, one row
group of Arrow data (a quarter of the memory budget, at most 64 MiB; see
:mod:`~airflow_dynamoscan.scan.memory`).
"""

from __future__ import annotations

import abc
import base64
import contextlib
import csv
import functools
import gzip
import io
import itertools
import logging
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import IO, Any

import orjson

from airflow_dynamoscan.exceptions import InvalidScanArgumentError
from airflow_dynamoscan.export import columnar, transcode
from airflow_dynamoscan.export.schema import (
    ExportSchema,
    converter,
    csv_text,
    decimal_parameters,
    number_text,
    overflow_text,
    split_item,
)
from airflow_dynamoscan.scan.memory import MemoryBudget

log = logging.getLogger(__name__)

#: The export file formats.
FILE_FORMATS = ("jsonl", "dynamodb_json", "csv", "parquet")

#: Compressions of the line and CSV formats; the file gets a ``.gz`` suffix with gzip. ``"none"`` means ``None``.
TEXT_COMPRESSIONS = (None, "gzip")

#: Compressions inside a Parquet file; ``None`` means :data:`DEFAULT_PARQUET_COMPRESSION`.
PARQUET_COMPRESSIONS = ("snappy", "zstd", "gzip", "none")

#: What a Parquet file is compressed with when the caller gives ``compression=None``.
DEFAULT_PARQUET_COMPRESSION = "snappy"

#: gzip level of ``.gz`` parts: zlib's default, which compresses almost as well as 9 at several times the speed.
GZIP_LEVEL = 6

_EXTENSIONS = {"jsonl": ".jsonl", "dynamodb_json": ".json", "csv": ".csv", "parquet": ".parquet"}
_COLUMN_FORMATS = ("csv", "parquet")
_ATTRIBUTE_VALUE_TAGS = frozenset({"S", "N", "B", "SS", "NS", "BS", "BOOL", "NULL", "L", "M"})
_BYTES_TYPES = (bytes, bytearray, memoryview)
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
# What closing a gzip stream adds at most: the final deflate block and the 8-byte trailer, with room to spare.
_GZIP_CLOSE_BYTES = 32
# Cells that a spreadsheet reads as a formula (or that start with the escape mark itself).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")


def validate_format(file_format: object, compression: object, *, table_name: str | None) -> str | None:
    """
    Check a file format and its compression; return the compression to use.

    :param file_format: one of :data:`FILE_FORMATS`
    :param compression: for the text formats ``None``, ``"none"`` or ``"gzip"``; for ``parquet`` ``None`` (which
        means ``"snappy"``), ``"snappy"``, ``"zstd"``, ``"gzip"`` or ``"none"``
    :param table_name: the table being exported, named in the error message (``None`` if unknown)
    :return: ``None`` or ``"gzip"`` for the text formats; one of :data:`PARQUET_COMPRESSIONS` for ``parquet``.
    :raises InvalidScanArgumentError: naming the table, the parameter, the bad value and the allowed values; or
        ``parquet`` without pyarrow installed (see :func:`require_pyarrow`).
    """
    where = f"Table {table_name!r}: " if table_name else ""
    if file_format not in FILE_FORMATS:
        raise InvalidScanArgumentError(
            f"{where}file_format={file_format!r} is not allowed; allowed: {', '.join(FILE_FORMATS)}."
        )
    if file_format == "parquet":
        require_pyarrow(table_name)
        if compression is None:
            return DEFAULT_PARQUET_COMPRESSION
        if compression in PARQUET_COMPRESSIONS:
            return str(compression)
        allowed = "'snappy' (the default, also for None), 'zstd', 'gzip', 'none'"
    else:
        if compression is None or compression == "none":
            return None
        if compression == "gzip":
            return "gzip"
        allowed = "None (or 'none'), 'gzip'"
    raise InvalidScanArgumentError(
        f"{where}compression={compression!r} is not allowed with file_format={file_format!r}; allowed: {allowed}."
    )


def require_pyarrow(table_name: str | None) -> None:
    """
    Check that pyarrow, which Parquet exports need, can be imported on this worker.

    :raises InvalidScanArgumentError: it cannot, naming the table, the extra to install and the other formats.
    """
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        where = f"Table {table_name!r}: " if table_name else ""
        raise InvalidScanArgumentError(
            f"{where}file_format='parquet' needs pyarrow, which is not installed where this task runs: install "
            "the parquet extra (pip install 'airflow-dynamoscan[parquet]') on every worker, or choose "
            "file_format='jsonl', 'dynamodb_json' or 'csv'."
        ) from None


def needs_attribute_values(file_format: str) -> bool:
    """
    Return whether ``file_format`` is fed AttributeValue items (botocore's client shape, ``deserialize=False``).

    Only ``dynamodb_json`` is; every other format is fed plain Python items.

    :raises InvalidScanArgumentError: ``file_format`` is not one of :data:`FILE_FORMATS`.
    """
    validate_format(file_format, None, table_name=None)
    return file_format == "dynamodb_json"


def part_extension(file_format: str, compression: str | None) -> str:
    """
    Return the file name ending of a part: ``.jsonl``, ``.jsonl.gz``, ``.json(.gz)``, ``.csv(.gz)`` or ``.parquet``.

    :raises InvalidScanArgumentError: an unknown format or a compression the format does not allow.
    """
    effective = validate_format(file_format, compression, table_name=None)
    extension = _EXTENSIONS[file_format]
    if file_format != "parquet" and effective == "gzip":
        extension += ".gz"
    return extension


def _sorted_set(values: set[Any] | frozenset[Any]) -> list[Any]:
    try:
        return sorted(values)
    except TypeError:
        # A set of mixed types (never one DynamoDB returns): order by encoded text so the output stays stable.
        return sorted(values, key=encode_json)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return orjson.Fragment(number_text(value))
    if isinstance(value, _BYTES_TYPES):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, (set, frozenset)):
        return _sorted_set(value)
    raise TypeError(f"Cannot export a value of type {type(value).__name__}: {value!r:.80}")


def _big_ints_as_text(value: Any) -> Any:
    # orjson only writes integers within 64 bits; wider ones become exact JSON number fragments.
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if _INT64_MIN <= value <= _INT64_MAX else orjson.Fragment(str(value))
    if isinstance(value, dict):
        return {name: _big_ints_as_text(nested) for name, nested in value.items()}
    if isinstance(value, (list, tuple)):
        return [_big_ints_as_text(nested) for nested in value]
    if isinstance(value, (set, frozenset)):
        return [_big_ints_as_text(nested) for nested in _sorted_set(value)]
    return value


def encode_json(value: Any, *, newline: bool = False) -> bytes:
    """
    Return the exact JSON encoding of a plain Python value, as used by ``jsonl`` and the JSON text columns.

    ``Decimal`` and ``int`` -> exact number text, ``set`` -> sorted array, ``bytes`` -> base64 string.

    :param value: a plain Python value (``str``, ``Decimal``, ``int``, ``bool``, ``None``, ``bytes``, ``set``,
        ``list``, ``dict``) or an AttributeValue dict
    :param newline: end the text with ``\\n``
    :raises TypeError: a value of another type, naming it.
    :raises ValueError: a NaN or infinite ``Decimal``. (Python floats, which a scan never returns, are written
        by orjson, which turns a NaN float into ``null``.)
    """
    option = orjson.OPT_APPEND_NEWLINE if newline else 0
    try:
        return orjson.dumps(value, default=_json_default, option=option)
    except orjson.JSONEncodeError as error:
        # orjson wraps what the default hook raised in a vaguer message; raise the hook's own error.
        cause = error.__cause__
        if isinstance(cause, (TypeError, ValueError)):
            raise cause from None
        if cause is None and "64-bit" in str(error):
            return orjson.dumps(_big_ints_as_text(value), default=_json_default, option=option)
        raise


def _json_text(value: Any) -> str:
    return encode_json(value).decode("utf-8")


def csv_cell(value: Any) -> str:
    """Return the CSV text of a value as a ``json``-free column holds it: see the module docstring."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (Decimal, int, float)):
        return number_text(value)
    if isinstance(value, _BYTES_TYPES):
        return base64.b64encode(value).decode("ascii")
    return _json_text(value)


def escape_formula(text: str) -> str:
    """Put ``'`` in front of a cell a spreadsheet would read as a formula (or that starts with ``'``)."""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


class _CountingWriter:
    """A binary writer that passes bytes to ``fileobj`` and counts them; never closes ``fileobj``."""

    closed = False

    def __init__(self, fileobj: IO[bytes]) -> None:
        self._fileobj = fileobj
        self.count = 0

    def write(self, data: Any) -> int:
        self._fileobj.write(data)
        size = memoryview(data).nbytes
        self.count += size
        return size

    def flush(self) -> None:
        self._fileobj.flush()

    def writable(self) -> bool:
        return True


def _deflate_bound(size: int) -> int:
    # zlib's compressBound: what deflate may produce at most for `size` bytes of input (incompressible data).
    return size + (size >> 12) + (size >> 14) + (size >> 25) + 13


class _Output:
    """Bytes to a file, through gzip if asked, counting what reaches the file."""

    def __init__(self, fileobj: IO[bytes], *, gzip_compressed: bool) -> None:
        self._counter = _CountingWriter(fileobj)
        # Uncompressed bytes given to gzip since its last flush: what the file size does not show yet.
        self._pending = 0
        # mtime=0 and no file name in the header: the same items always give the same bytes.
        self._gzip = (
            gzip.GzipFile(fileobj=self._counter, mode="wb", compresslevel=GZIP_LEVEL, mtime=0)  # type: ignore[arg-type]
            if gzip_compressed
            else None
        )

    @property
    def bytes_written(self) -> int:
        return self._counter.count

    def projected_size(self, more: int) -> int:
        """A bound of the file's size if ``more`` bytes were written and the file closed now (exact without gzip)."""
        if self._gzip is None:
            return self._counter.count + more
        return self._counter.count + _deflate_bound(self._pending + more) + _GZIP_CLOSE_BYTES

    def write(self, data: bytes | memoryview) -> None:
        if self._gzip is not None:
            self._gzip.write(data)
            self._pending += memoryview(data).nbytes
        else:
            self._counter.write(data)

    def flush(self) -> bool:
        """Push out what gzip holds back, so the size is exact again; return whether anything was pending."""
        if self._gzip is None or not self._pending:
            return False
        # A sync flush keeps the compression window, so the cost is a few bytes.
        self._gzip.flush()
        self._pending = 0
        return True

    def write_within(self, chunks: Sequence[bytes], max_bytes: int | None, *, take_one: bool) -> int:
        """
        Write the leading ``chunks`` that keep the file within ``max_bytes``; return how many were written.

        :param take_one: write the first chunk even if it does not fit (the part holds nothing yet)
        """
        if max_bytes is None:
            self.write(b"".join(chunks))
            return len(chunks)
        return self.write_sized(
            [len(chunk) for chunk in chunks],
            lambda start, end: b"".join(chunks[start:end]),
            max_bytes,
            take_one=take_one,
        )

    def write_sized(
        self, sizes: Sequence[int], data: Callable[[int, int], Any], max_bytes: int | None, *, take_one: bool
    ) -> int:
        """
        Write the leading chunks that keep the file within ``max_bytes``; return how many were written.

        :param sizes: the size of each chunk
        :param data: the bytes of chunks ``start`` to ``end`` (excluded), one after the other
        :param take_one: write the first chunk even if it does not fit (the part holds nothing yet)
        """
        if max_bytes is None:
            self.write(data(0, len(sizes)))
            return len(sizes)
        taken = 0
        while taken < len(sizes):
            end, size = taken, 0
            while end < len(sizes) and self.projected_size(size + sizes[end]) <= max_bytes:
                size += sizes[end]
                end += 1
            if end == taken:
                if self.flush():
                    continue
                if not (take_one and taken == 0):
                    break
                end = taken + 1
            self.write(data(taken, end))
            taken = end
        return taken

    def finish(self) -> None:
        if self._gzip is not None:
            self._gzip.close()
        self._counter.flush()


class PartEncoder(abc.ABC):
    """
    Writes items into one part file.

    :ivar items: items written so far
    :ivar bytes_written: bytes written to the file so far, compressed; exact after :meth:`close`
    """

    items: int

    def __init__(self) -> None:
        self.items = 0
        self._closed = False

    @property
    @abc.abstractmethod
    def bytes_written(self) -> int:
        """Bytes written to the file so far; exact after :meth:`close`."""

    @abc.abstractmethod
    def write_items(
        self, items: Sequence[Mapping[str, Any]], *, max_bytes: int | None = None, wire: bool = False
    ) -> int:
        """
        Encode the leading items of ``items`` that keep the finished part within ``max_bytes``; return how many.

        Without ``max_bytes`` every item is written. A part without items takes at least one, whatever its size.

        :param wire: the items are in the wire shape (AttributeValues as a Scan response's JSON holds them, ``B``
            as base64 text; see :attr:`~airflow_dynamoscan.scan.scanner.ScanPage.wire_items`) and are transcoded
            (:mod:`~airflow_dynamoscan.export.transcode`): the bytes are the same as for the decoded items.

        :raises TypeError: a value of a type the format cannot encode.
        :raises ValueError: a NaN or infinite number.
        :raises SchemaMismatchError: an item does not fit a schema without an extra column.
        """

    def close(self) -> None:
        """Finish the file (gzip trailer, Parquet row group and footer); the file object stays open."""
        if not self._closed:
            self._closed = True
            self._finish()

    def discard(self) -> None:
        """Release the encoder of a part that is abandoned after an error; errors in finishing it are ignored."""
        if not self._closed:
            self._closed = True
            with contextlib.suppress(Exception):
                self._finish()

    @abc.abstractmethod
    def _finish(self) -> None: ...


class _TextEncoder(PartEncoder):
    """A part of text chunks (lines, CSV rows) through :class:`_Output`."""

    def __init__(self, fileobj: IO[bytes], *, gzip_compressed: bool) -> None:
        super().__init__()
        self._output = _Output(fileobj, gzip_compressed=gzip_compressed)

    @property
    def bytes_written(self) -> int:
        return self._output.bytes_written

    def _write_chunks(self, chunks: Sequence[bytes], max_bytes: int | None) -> int:
        written = self._output.write_within(chunks, max_bytes, take_one=self.items == 0)
        self._output.flush()
        self.items += written
        return written

    def _write_buffer(self, sizes: Sequence[int], data: memoryview, max_bytes: int | None) -> int:
        """Write the leading chunks of ``data`` (one after the other, of ``sizes``) within ``max_bytes``."""
        ends = list(itertools.accumulate(sizes, initial=0))
        written = self._output.write_sized(
            sizes, lambda start, end: data[ends[start] : ends[end]], max_bytes, take_one=self.items == 0
        )
        self._output.flush()
        self.items += written
        return written

    def _finish(self) -> None:
        self._output.finish()


class _LineEncoder(_TextEncoder):
    """``jsonl`` and ``dynamodb_json``: one JSON document per item and line."""

    def __init__(self, fileobj: IO[bytes], *, gzip_compressed: bool, attribute_values: bool) -> None:
        super().__init__(fileobj, gzip_compressed=gzip_compressed)
        self._attribute_values = attribute_values

    def write_items(
        self, items: Sequence[Mapping[str, Any]], *, max_bytes: int | None = None, wire: bool = False
    ) -> int:
        if not items:
            return 0
        if self._attribute_values:
            _check_attribute_value_item(items[0])
            lines = [transcode.dynamodb_json_line(item) if wire else _item_line(item) for item in items]
        elif wire:
            lines = [transcode.jsonl_line(item) for item in items]
        else:
            lines = [encode_json(item, newline=True) for item in items]
        return self._write_chunks(lines, max_bytes)


def _item_line(item: Mapping[str, Any]) -> bytes:
    return encode_json({"Item": item}, newline=True)


def _check_attribute_value_item(item: Mapping[str, Any]) -> None:
    for name, value in item.items():
        if not (isinstance(value, dict) and len(value) == 1 and next(iter(value)) in _ATTRIBUTE_VALUE_TAGS):
            raise InvalidScanArgumentError(
                f"file_format='dynamodb_json' needs items of AttributeValues (scan with deserialize=False), "
                f"but attribute {name!r} is {value!r:.80}."
            )


def _json_converter(schema: ExportSchema) -> list[Callable[[Any], Any]]:
    return [converter(column.type, _json_text) for column in schema.columns]


class _TableCells:
    """The cells of a schema's columns for a batch of items, decoded or in the wire shape."""

    def __init__(self, schema: ExportSchema, where: str) -> None:
        self._schema = schema
        self._where = where
        self._converters = _json_converter(schema)
        self._wire_converters = [transcode.wire_cell_converter(column.type) for column in schema.columns]

    def columns(self, items: Sequence[Mapping[str, Any]], *, wire: bool) -> list[list[Any]]:
        """One list of cells per column of the part, the extra column's JSON texts last (if the schema has it)."""
        schema = self._schema
        if wire:
            columns, extra = transcode.wire_columns(schema, self._wire_converters, items, self._where)
            return columns if extra is None else [*columns, extra]
        rows = []
        for item in items:
            cells, overflow = split_item(schema, self._converters, item, self._where)
            if schema.extra_column is not None:
                cells.append(None if overflow is None else overflow_text(overflow, encode_json))
            rows.append(cells)
        return [list(column) for column in zip(*rows, strict=True)]


class _CsvEncoder(_TextEncoder):
    """CSV with the export's header; rows stream to the file."""

    def __init__(
        self, fileobj: IO[bytes], *, gzip_compressed: bool, schema: ExportSchema, formula_escaping: bool, where: str
    ) -> None:
        super().__init__(fileobj, gzip_compressed=gzip_compressed)
        self._cells = _TableCells(schema, where)
        escaped_types = ("string", "binary") if formula_escaping else ()
        # The type of each column of a row (the extra column's cells are JSON text), and whether it is escaped.
        self._types = [column.type for column in schema.columns] + (["json"] if schema.extra_column else [])
        self._escaped = [column_type in escaped_types for column_type in self._types]
        # Wire pages become text in Arrow, page by page, when pyarrow is installed (the same bytes, faster).
        self._arrow_rows = _arrow_csv_rows(schema, where, self._escaped)
        self._text = io.StringIO()
        self._writer = csv.writer(self._text)
        header = schema.header
        self._output.write(self._row_bytes([escape_formula(name) for name in header] if formula_escaping else header))

    def _row_bytes(self, cells: Sequence[str]) -> bytes:
        self._writer.writerow(cells)
        data = self._text.getvalue().encode("utf-8")
        self._text.seek(0)
        self._text.truncate()
        return data

    def write_items(
        self, items: Sequence[Mapping[str, Any]], *, max_bytes: int | None = None, wire: bool = False
    ) -> int:
        if not items:
            return 0
        if wire and self._arrow_rows is not None:
            sizes, data = self._arrow_rows.rows(items)
            return self._write_buffer(sizes, data, max_bytes)
        types, escaped = self._types, self._escaped
        rows = []
        for cells in zip(*self._cells.columns(items, wire=wire), strict=True):
            texts = [
                "" if cell is None else escape_formula(text) if escape else text
                for cell, column_type, escape in zip(cells, types, escaped, strict=True)
                for text in (("" if cell is None else csv_text(column_type, cell)),)
            ]
            rows.append(self._row_bytes(texts))
        return self._write_chunks(rows, max_bytes)


def _arrow_csv_rows(schema: ExportSchema, where: str, escaped: Sequence[bool]) -> columnar.CsvRows | None:
    try:
        return columnar.CsvRows(schema, where, escaped)
    except ImportError:
        return None


def _import_pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow
        import pyarrow.compute
        import pyarrow.parquet
    except ImportError as error:
        raise ImportError(
            "file_format='parquet' needs pyarrow, which is not installed: pip install 'airflow-dynamoscan[parquet]'"
        ) from error
    return pyarrow, pyarrow.parquet


def _arrow_type(pa: Any, column_type: str) -> Any:
    simple = {
        "string": pa.string(),
        "number": pa.string(),
        "json": pa.string(),
        "int64": pa.int64(),
        "bool": pa.bool_(),
        "binary": pa.binary(),
        "float64": pa.float64(),
    }
    if column_type in simple:
        return simple[column_type]
    precision, scale = decimal_parameters(column_type)
    return pa.decimal128(precision, scale)


def arrow_schema(schema: ExportSchema) -> Any:
    """The ``pyarrow.Schema`` of the Parquet parts of an export with ``schema`` (``_extra`` a string, last)."""
    pa, _ = _import_pyarrow()
    fields = [pa.field(column.name, _arrow_type(pa, column.type)) for column in schema.columns]
    if schema.extra_column is not None:
        fields.append(pa.field(schema.extra_column, pa.string()))
    return pa.schema(fields)


# Values whose min/max statistics have a fixed size; others (strings, binary) get none, so the footer stays small
# and its size predictable.
_FIXED_SIZE_TYPES = ("int64", "bool", "float64")
# A bound of the encoded size of one cell beyond its value's bytes (definition level, length prefix).
_CELL_OVERHEAD = 6
# Bound of a column chunk's own overhead (page headers, dictionary page, compression framing).
_COLUMN_CHUNK_OVERHEAD = 160
# Bound of what one row group adds to the footer beyond a measured one, per column (statistics, offsets).
_FOOTER_MARGIN_PER_COLUMN = 64


def _row_sizes(pa: Any, pc: Any, batch: Any) -> list[int]:
    """A bound of each row's encoded size: per cell, its bytes (strings, binary) or a fixed size, plus overhead."""
    total = None
    for array in batch.columns:
        if pa.types.is_string(array.type) or pa.types.is_binary(array.type):
            lengths = pc.add(pc.cast(pc.binary_length(array), pa.int64()), _CELL_OVERHEAD)
            sizes = pc.coalesce(lengths, 1)
        else:
            fixed = (16 if pa.types.is_decimal(array.type) else 8) + _CELL_OVERHEAD
            sizes = pc.if_else(pc.is_valid(array), pa.scalar(fixed, pa.int64()), pa.scalar(1, pa.int64()))
        total = sizes if total is None else pc.add(total, sizes)
    return [0] * batch.num_rows if total is None else total.to_pylist()


@functools.lru_cache(maxsize=16)
def _footer_sizes(schema: ExportSchema, compression: str) -> tuple[int, int]:
    """Measure a Parquet file of this schema: its size without rows, and what each row group adds (without data)."""
    pa, pq = _import_pyarrow()
    arrow = arrow_schema(schema)
    sizes = []
    for row_groups in (0, 1, 2):
        sink = io.BytesIO()
        writer = pq.ParquetWriter(sink, arrow, compression=compression, write_statistics=_statistics_columns(schema))
        for _ in range(row_groups):
            writer.write_table(pa.Table.from_pylist([{}], schema=arrow))
        writer.close()
        sizes.append(len(sink.getvalue()))
    return sizes[0], sizes[2] - sizes[1]


def _statistics_columns(schema: ExportSchema) -> list[str]:
    return [column.name for column in schema.columns if column.type in _FIXED_SIZE_TYPES or "decimal" in column.type]


class _ParquetEncoder(PartEncoder):
    """Parquet with the export's schema: rows gather into row groups that are written to the file as they fill."""

    def __init__(
        self, fileobj: IO[bytes], *, compression: str, schema: ExportSchema, where: str, row_group_bytes: int
    ) -> None:
        super().__init__()
        self._pa, pq = _import_pyarrow()
        self._cells = _TableCells(schema, where)
        self._columns = columnar.ColumnBuilder(schema, where, text=False)
        self._row_group_bytes = row_group_bytes
        self._arrow = arrow_schema(schema)
        self._file = _CountingWriter(fileobj)
        self._pool = columnar.memory_pool()
        self._compute = columnar.pool_compute(self._pool)
        self._writer = pq.ParquetWriter(
            self._file,
            self._arrow,
            compression=compression,
            write_statistics=_statistics_columns(schema),
            memory_pool=self._pool,
        )
        self._empty_size, self._row_group_footer = _footer_sizes(schema, compression)
        self._column_count = len(self._arrow)
        self._row_groups = 0
        self._batches: list[Any] = []
        self._buffered_rows = 0
        self._buffered_size = 0

    @property
    def bytes_written(self) -> int:
        return self._file.count

    def _projected_size(self, more: int) -> int:
        # The file so far + a bound of the rows not yet written (as one more row group) + the footer.
        buffered = self._buffered_size + more
        row_groups = self._row_groups
        size = self._file.count - (4 if row_groups else 0) + self._empty_size
        if buffered:
            row_groups += 1
            size += buffered + buffered // 5 + self._column_count * _COLUMN_CHUNK_OVERHEAD
        return size + row_groups * (self._row_group_footer + self._column_count * _FOOTER_MARGIN_PER_COLUMN)

    def write_items(
        self, items: Sequence[Mapping[str, Any]], *, max_bytes: int | None = None, wire: bool = False
    ) -> int:
        if not items:
            return 0
        pa = self._pa
        if wire:
            arrays = self._columns.build(items)
        else:
            columns = self._cells.columns(items, wire=False)
            arrays = [
                pa.array(cells, type=field.type, memory_pool=self._pool)
                for cells, field in zip(columns, self._arrow, strict=True)
            ]
        batch = pa.RecordBatch.from_arrays(arrays, schema=self._arrow)
        sizes = _row_sizes(pa, self._compute, batch)
        taken = 0
        while taken < len(sizes):
            end, size = taken, 0
            if max_bytes is None:
                end, size = len(sizes), sum(sizes)
            else:
                while end < len(sizes) and self._projected_size(size + sizes[end]) <= max_bytes:
                    size += sizes[end]
                    end += 1
            if end == taken:
                if self._batches:
                    self._write_row_group()
                    continue
                if not (self.items == 0 and taken == 0):
                    break
                end, size = taken + 1, sizes[taken]
            self._buffer(batch.slice(taken, end - taken), size)
            taken = end
            if self._buffered_size >= self._row_group_bytes:
                self._write_row_group()
        self.items += taken
        return taken

    def _buffer(self, batch: Any, size: int) -> None:
        self._batches.append(batch)
        self._buffered_rows += batch.num_rows
        self._buffered_size += size

    def _write_row_group(self) -> None:
        rows = self._buffered_rows
        self._writer.write_table(self._pa.Table.from_batches(self._batches, schema=self._arrow), row_group_size=rows)
        self._row_groups += 1
        self._batches, self._buffered_rows, self._buffered_size = [], 0, 0

    def _finish(self) -> None:
        if self._batches:
            self._write_row_group()
        self._writer.close()


def validate_columns(file_format: str, columns: Sequence[str] | None) -> list[str] | None:
    """
    Check the ``columns`` argument of a format; return it as a list (``None`` stays ``None``).

    :raises InvalidScanArgumentError: ``columns`` given for a format other than ``csv`` and ``parquet``, or not
        a non-empty list of distinct attribute names.
    """
    if columns is None:
        return None
    if file_format not in _COLUMN_FORMATS:
        raise InvalidScanArgumentError(
            f"columns={columns!r} is not allowed with file_format={file_format!r}; it applies to "
            f"{' and '.join(_COLUMN_FORMATS)} only (use a ProjectionExpression to choose attributes)."
        )
    names = list(columns)
    if isinstance(columns, str) or not names or not all(isinstance(name, str) and name for name in names):
        raise InvalidScanArgumentError(
            f"columns={columns!r} is not allowed; it must be a non-empty list of attribute names."
        )
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise InvalidScanArgumentError(f"columns={columns!r} is not allowed; it names {duplicated} more than once.")
    return names


def uses_schema(file_format: str) -> bool:
    """Return whether parts of ``file_format`` have columns, so an export needs one schema (``csv``, ``parquet``)."""
    return file_format in _COLUMN_FORMATS


def open_encoder(
    file_format: str,
    fileobj: IO[bytes],
    *,
    compression: str | None,
    schema: ExportSchema | None = None,
    csv_formula_escaping: bool = False,
    where: str = "the export",
    row_group_bytes: int | None = None,
) -> PartEncoder:
    """
    Return an encoder writing one part in ``file_format`` to ``fileobj``.

    :param file_format: one of :data:`FILE_FORMATS`
    :param fileobj: a writable binary file; the encoder writes to it and flushes it, never closes it
    :param compression: as accepted by :func:`validate_format`
    :param schema: for ``csv`` and ``parquet`` (required), the export's schema
        (:mod:`~airflow_dynamoscan.export.schema`); other formats take none
    :param csv_formula_escaping: for ``csv``, escape cells a spreadsheet would read as formulas (module docstring)
    :param where: the part, named in a :class:`~airflow_dynamoscan.exceptions.SchemaMismatchError`
    :param row_group_bytes: for ``parquet``, the Arrow data gathered before it is written as one row group
        (default: that of :class:`~airflow_dynamoscan.scan.memory.MemoryBudget`'s default budget)
    :raises InvalidScanArgumentError: an unknown format or compression, a schema missing for ``csv``/``parquet``
        or given for another format, or ``csv_formula_escaping`` for a format other than ``csv``.
    :raises ImportError: ``parquet`` without pyarrow installed, naming ``pip install 'airflow-dynamoscan[parquet]'``.
    """
    effective = validate_format(file_format, compression, table_name=None)
    if uses_schema(file_format) != (schema is not None):
        raise InvalidScanArgumentError(
            f"file_format={file_format!r} {'needs' if schema is None else 'takes no'} schema; a schema applies to "
            f"{' and '.join(_COLUMN_FORMATS)} only."
        )
    if csv_formula_escaping and file_format != "csv":
        raise InvalidScanArgumentError(
            f"csv_formula_escaping=True is not allowed with file_format={file_format!r}; it applies to csv only."
        )
    if file_format == "parquet":
        assert effective is not None and schema is not None
        if row_group_bytes is None:
            row_group_bytes = MemoryBudget().row_group_bytes
        return _ParquetEncoder(
            fileobj, compression=effective, schema=schema, where=where, row_group_bytes=row_group_bytes
        )
    gzip_compressed = effective == "gzip"
    if file_format == "csv":
        assert schema is not None
        return _CsvEncoder(
            fileobj,
            gzip_compressed=gzip_compressed,
            schema=schema,
            formula_escaping=csv_formula_escaping,
            where=where,
        )
    return _LineEncoder(fileobj, gzip_compressed=gzip_compressed, attribute_values=file_format == "dynamodb_json")
