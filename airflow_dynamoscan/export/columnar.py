"""
Arrow columns of a page of wire items, built column by column: the cells of Parquet parts, and the text of CSV rows.

A page's cells are gathered with one Python pass per column (the wire value of each item); the typed work is done
on whole columns in Arrow's C kernels (:mod:`pyarrow.compute`) instead of one Python call per cell:

* numbers: the texts that are plainly what the column holds (``-?[0-9]{1,18}`` for ``int64``, fixed-point numbers
  within the digits of a ``decimal(p,s)``, the texts :func:`~airflow_dynamoscan.export.transcode.wire_number_text`
  keeps as they are) are matched by a regular expression and cast to ``int64``/``decimal128`` at once; the other
  texts (exponents, too many digits) take the per-cell path of
  :func:`~airflow_dynamoscan.export.transcode.wire_cell_converter`, which decides what fits exactly as the decoding
  path does;
* ``json`` columns: the JSON values of a column go to ``orjson`` as one array with a raw newline between cells
  (``orjson`` escapes every newline inside a value), and Arrow splits the text into the cells;
* CSV: cells become text in Arrow (casts of ``int64`` and ``bool``, the number texts), then formula escaping,
  RFC 4180 quoting (a cell holding ``,``, ``"``, CR or LF is quoted, quotes doubled: what :func:`csv.writer` does)
  and the rows joined with ``,`` and CRLF, so a page's rows come out as one buffer.

What each cell holds, what overflows to the extra column, and every error are those of
:func:`~airflow_dynamoscan.export.transcode.wire_columns` (and so of the decoding path); the property tests hold the
paths side by side.
"""

from __future__ import annotations

import binascii
import functools
import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from airflow_dynamoscan.export.schema import MISFIT, ExportSchema, decimal_parameters
from airflow_dynamoscan.export.transcode import (
    json_value,
    overflow_json_text,
    raise_first_mismatch,
    wire_cell_converter,
    wire_number_text,
)

WireItem = Mapping[str, Mapping[str, Any]]

#: The type key whose value a column of each type holds (``json`` and ``float64`` take none).
_COLUMN_TAGS = {"string": "S", "bool": "BOOL", "int64": "N", "number": "N", "binary": "B"}

#: Integers that always fit ``int64``: what :func:`~airflow_dynamoscan.export.transcode.wire_cell_converter` reads
#: with ``int(text)``.
_INT64_TEXT = r"^-?[0-9]{1,18}$"

#: :data:`~airflow_dynamoscan.export.transcode._PLAIN_NUMBER`: number texts that an export writes as they are.
_PLAIN_NUMBER_TEXT = r"^-?(?:[1-9][0-9]*(?:\.[0-9]+)?|0(?:\.(?:0{0,5}[1-9][0-9]*|0{1,6}))?)$"

#: Between two cells of a ``json`` column in the text ``orjson`` writes for the whole column.
_CELL_BREAK = orjson.Fragment(b"\n")
_CELL_SPLIT = ",\n,"

#: Cells a spreadsheet reads as a formula (or that start with the escape mark itself), as formats' escaping.
_FORMULA_START = r"^[=+\-@\t\r']"
#: Cells that RFC 4180 (and :func:`csv.writer`) quote.
_NEEDS_QUOTES = '[,"\r\n]'


def memory_pool() -> Any:
    """
    The Arrow memory pool of Parquet and CSV encoding: the system allocator's, which gives freed memory back to the
    operating system, so a part's row groups and pages come and go without raising the process's memory for good
    (Arrow's default pool keeps what it freed for reuse).
    """
    import pyarrow

    return pyarrow.system_memory_pool()


def pool_compute(pool: Any) -> Any:
    """:mod:`pyarrow.compute`, each function allocating its results from ``pool``."""
    import pyarrow.compute

    return _PoolCompute(pyarrow.compute, pool)


class _PoolCompute:
    def __init__(self, compute: Any, pool: Any) -> None:
        self._compute = compute
        self._pool = pool

    def __getattr__(self, name: str) -> Callable[..., Any]:
        return functools.partial(getattr(self._compute, name), memory_pool=self._pool)


def decimal_text_pattern(column_type: str) -> str:
    """
    The fixed-point texts (no exponent) that fit a ``decimal(p,s)`` column, counted on the digits as
    :func:`~airflow_dynamoscan.export.transcode.wire_cell_converter` counts them: at most ``p - s`` integer digits
    after leading zeros, at most ``s`` fraction digits, at least one digit on each side of a point.
    """
    precision, scale = decimal_parameters(column_type)
    integer = "0+" if precision == scale else f"(?:0*[1-9][0-9]{{0,{precision - scale - 1}}}|0+)"
    fraction = f"(?:\\.[0-9]{{1,{scale}}})?" if scale else ""
    return f"^-?{integer}{fraction}$"


class ColumnBuilder:
    """
    Builds the Arrow arrays of pages of wire items for one export schema: one array per part column, the extra
    column last (if the schema has one).

    :param schema: the export's schema
    :param where: the part, named in a :class:`~airflow_dynamoscan.exceptions.SchemaMismatchError`
    :param text: build CSV text (``string`` arrays, ``None`` for an empty cell) instead of Parquet's typed arrays
    """

    def __init__(self, schema: ExportSchema, where: str, *, text: bool) -> None:
        import pyarrow

        self._pa = pyarrow
        self._pool = memory_pool()
        self._pc = pool_compute(self._pool)
        self._schema = schema
        self._where = where
        self._text = text
        self._converters = [wire_cell_converter(column.type) for column in schema.columns]
        self._null_string = pyarrow.scalar(None, pyarrow.string())

    def build(self, items: Sequence[WireItem]) -> list[Any]:
        """
        Return the arrays of ``items``' cells, column by column, the extra column's JSON texts last.

        :raises SchemaMismatchError: something overflows and the schema has no extra column (the message of the
            decoding path).
        :raises ValueError: a malformed AttributeValue, a NaN or infinite number (as the decoding path).
        """
        schema = self._schema
        overflows: dict[int, dict[str, Mapping[str, Any]]] = {}
        arrays = []
        for column, convert in zip(schema.columns, self._converters, strict=True):
            values = [item.get(column.name) for item in items]
            misfits: list[int] = []
            if column.type == "json":
                array = self._json_column(values)
            elif column.type == "float64":
                # A scan never returns a float: every value that is not null overflows.
                misfits = [index for index, value in enumerate(values) if value is not None and "NULL" not in value]
                array = self._pa.nulls(
                    len(values), self._pa.string() if self._text else self._pa.float64(), memory_pool=self._pool
                )
            else:
                tag = _COLUMN_TAGS.get(column.type, "N")
                cells = [None if value is None else value.get(tag, MISFIT) for value in values]
                if MISFIT in cells:
                    for index, cell in enumerate(cells):
                        if cell is MISFIT:
                            cells[index] = None
                            value = values[index]
                            if value is not None and "NULL" not in value:
                                misfits.append(index)
                array = self._scalar_column(column.type, cells, values, convert, misfits)
            for index in misfits:
                if schema.extra_column is None:
                    self._raise_mismatch(items)
                overflows.setdefault(index, {})[column.name] = values[index]  # type: ignore[assignment]
            arrays.append(array)
        if schema.other_attributes == "extra":
            known = schema.name_set
            for index, item in enumerate(items):
                if not known.issuperset(item):
                    if schema.extra_column is None:
                        self._raise_mismatch(items)
                    others = overflows.setdefault(index, {})
                    others.update((name, value) for name, value in item.items() if name not in known)
        if schema.extra_column is not None:
            extra: list[str | None] = [None] * len(items)
            for index, overflow in overflows.items():
                extra[index] = overflow_json_text(overflow)
            arrays.append(self._pa.array(extra, self._pa.string(), memory_pool=self._pool))
        return arrays

    def _raise_mismatch(self, items: Sequence[WireItem]) -> None:
        # The decoding path's error, for the first item that does not fit (items in order, columns in order).
        raise_first_mismatch(self._schema, items, self._where)

    def _scalar_column(
        self,
        column_type: str,
        cells: list[Any],
        values: list[Any],
        convert: Callable[[Mapping[str, Any]], Any],
        misfits: list[int],
    ) -> Any:
        """The array of a column whose cells are the wire values of one type key (``None`` for null and misfits)."""
        pa, pc = self._pa, self._pc
        if column_type == "string":
            return pa.array(cells, pa.string(), memory_pool=self._pool)
        if column_type == "bool":
            array = pa.array(cells, pa.bool_(), memory_pool=self._pool)
            return pc.cast(array, pa.string()) if self._text else array
        if column_type == "binary":
            blobs = [None if cell is None else binascii.a2b_base64(cell) for cell in cells]
            if self._text:
                # Base64 again from the bytes: the text the decoding path writes, whatever form the wire's had.
                texts = [None if blob is None else binascii.b2a_base64(blob, newline=False) for blob in blobs]
                return pc.cast(pa.array(texts, pa.binary(), memory_pool=self._pool), pa.string())
            return pa.array(blobs, pa.binary(), memory_pool=self._pool)
        texts = pa.array(cells, pa.string(), memory_pool=self._pool)
        if column_type == "number":
            return self._number_texts(texts)
        if column_type == "int64":
            pattern = _INT64_TEXT
            target = pa.int64()
        else:
            pattern = decimal_text_pattern(column_type)
            target = pa.decimal128(*decimal_parameters(column_type))
        fast = pc.coalesce(pc.match_substring_regex(texts, pattern), True)
        others = pc.indices_nonzero(pc.invert(fast)).to_pylist()
        if self._text and column_type != "int64":
            # A decimal column's CSV cell is the number's own text (12.5 stays 12.5 in a decimal(38,2) column).
            for index in others:
                if convert(values[index]) is MISFIT:
                    misfits.append(index)
            if others and misfits:
                texts = pc.if_else(self._mask(len(texts), misfits), self._null_string, texts)
            return self._number_texts(texts)
        if not others:
            typed = pc.cast(texts, target)
        else:
            # Exponents, many digits: the per-cell path decides, exactly as for a decoded value.
            converted = []
            for index in others:
                cell = convert(values[index])
                if cell is MISFIT:
                    misfits.append(index)
                    cell = None
                converted.append(cell)
            mask = self._mask(len(texts), others)
            typed = pc.replace_with_mask(
                pc.cast(pc.if_else(mask, self._null_string, texts), target),
                mask,
                pa.array(converted, target, memory_pool=self._pool),
            )
        return pc.cast(typed, pa.string()) if self._text else typed

    def _mask(self, length: int, indices: list[int]) -> Any:
        flags = [False] * length
        for index in indices:
            flags[index] = True
        return self._pa.array(flags, self._pa.bool_(), memory_pool=self._pool)

    def _number_texts(self, texts: Any) -> Any:
        """The exact text of each number: the wire text where it already is that, else ``str(Decimal(text))``."""
        pa, pc = self._pa, self._pc
        plain = pc.coalesce(pc.match_substring_regex(texts, _PLAIN_NUMBER_TEXT), True)
        others = pc.indices_nonzero(pc.invert(plain)).to_pylist()
        if not others:
            return texts
        written = [wire_number_text(texts[index].as_py()) for index in others]
        return pc.replace_with_mask(
            texts, self._mask(len(texts), others), pa.array(written, pa.string(), memory_pool=self._pool)
        )

    def _json_column(self, values: list[Any]) -> Any:
        """The JSON text of each value, as ``jsonl`` writes it; ``None`` for null and missing."""
        pa, pc = self._pa, self._pc
        if not values:
            return pa.array([], pa.string(), memory_pool=self._pool)
        listed: list[Any] = [_CELL_BREAK] * (2 * len(values) - 1)
        listed[::2] = [None if value is None else json_value(value) for value in values]
        text = orjson.dumps(listed)
        cells = pc.list_flatten(
            pc.split_pattern(pa.array([text[1:-1]], pa.string(), memory_pool=self._pool), _CELL_SPLIT)
        )
        # Only a NULL value (or a missing one) is the JSON null.
        return pc.if_else(pc.equal(cells, "null"), self._null_string, cells)


class CsvRows:
    """
    The CSV text of pages of wire items: each page's rows as one buffer, and the size of each row.

    :param schema: the export's schema
    :param where: the part, named in a :class:`~airflow_dynamoscan.exceptions.SchemaMismatchError`
    :param escaped: per part column, whether its cells get formula escaping
    """

    def __init__(self, schema: ExportSchema, where: str, escaped: Sequence[bool]) -> None:
        self._columns = ColumnBuilder(schema, where, text=True)
        self._pa = self._columns._pa
        self._pc = self._columns._pc
        self._escaped = list(escaped)

    def rows(self, items: Sequence[WireItem]) -> tuple[list[int], Any]:
        """
        Return the byte size of each item's row and the rows' bytes (a buffer), CRLF after each row.

        :raises SchemaMismatchError: as :meth:`ColumnBuilder.build`.
        """
        pc = self._pc
        cells = []
        arrays = self._columns.build(items)
        for array, escaped in zip(arrays, self._escaped, strict=True):
            if escaped:
                formula = pc.coalesce(pc.match_substring_regex(array, _FORMULA_START), False)
                array = pc.if_else(formula, pc.binary_join_element_wise("'", array, ""), array)
            quoted = pc.coalesce(pc.match_substring_regex(array, _NEEDS_QUOTES), False)
            array = pc.if_else(
                quoted, pc.binary_join_element_wise('"', pc.replace_substring(array, '"', '""'), '"', ""), array
            )
            array = pc.coalesce(array, "")
            if len(arrays) == 1:
                # csv.writer writes a row of one empty cell as "" (else the line would be empty).
                array = pc.if_else(pc.equal(array, ""), '""', array)
            cells.append(array)
        rows = pc.binary_join_element_wise(pc.binary_join_element_wise(*cells, ","), "\r\n", "")
        _, offsets_buffer, data = rows.buffers()
        # A string array's offsets: int32, one more than its rows, from its own offset on.
        offsets = memoryview(offsets_buffer).cast("i")[rows.offset : rows.offset + len(rows) + 1]
        sizes = [end - start for start, end in itertools.pairwise(offsets)]
        return sizes, memoryview(data)[offsets[0] : offsets[-1]]
