"""The contacts CSV format, read and written.

Columns: name, phone_number, email, tags (separated by ';' or '|'), is_active, opted_out
(true/false, yes/no, 1/0 or ndiyo/hapana; empty leaves the contact as it is). The header
row is required; its names are case-insensitive, spaces and hyphens read as _ ("Phone
Number", "Opted-Out"). Any other column whose name makes a custom field key
(``contacts.custom_fields``) fills that custom field, an empty cell leaving it out (a row
fills at most 20, however many columns the file has); other columns are ignored and reported.
Rows are numbered as a spreadsheet shows them: the header is row 1. Cells that would start a
formula are written with a leading ' and read back without it (``mifumo.csv_cells``).

What spreadsheets write is read too: UTF-8 (with or without a byte order mark), UTF-16
with a byte order mark (Excel's "Unicode text"), and Windows-1252 (Excel's plain "CSV" on
Windows); columns separated by commas, semicolons (Excel where the decimal mark is a
comma) or tabs, whichever makes the header name the required columns.
"""

from __future__ import annotations

import csv
import functools
import io
import itertools
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from contacts.custom_fields import MAX_KEYS, MAX_VALUE_LENGTH, key_error
from contacts.tags import TagError, join_tags, split_tags
from mifumo.csv_cells import restore, spreadsheet_lines
from mifumo.errors import DomainError, ErrorCode
from sms.phones import InvalidPhone, normalize_phone

COLUMNS = ("name", "phone_number", "email", "tags", "is_active", "opted_out")
REQUIRED_COLUMNS = ("name", "phone_number")
MAX_ROWS = 50_000
MAX_NAME_LENGTH = 200
MAX_EMAIL_LENGTH = 254
# A gzip upload may expand up to this much; 50,000 generous rows fit well inside it.
MAX_DECOMPRESSED_BYTES = 64 * 1024 * 1024
_GZIP_MAGIC = b"\x1f\x8b"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_DELIMITERS = (",", ";", "\t")
_TRUE = {"true", "1", "yes", "y", "t", "ndiyo"}
_FALSE = {"false", "0", "no", "n", "f", "hapana"}
_ACTIVE = {**dict.fromkeys(_TRUE, True), **dict.fromkeys(_FALSE, False)}
# The opted_out column: English or Swahili, never guessed.
_OPTED_OUT = {"true": True, "yes": True, "1": True, "ndiyo": True}
_OPTED_OUT.update({"false": False, "no": False, "0": False, "hapana": False})


@dataclass(frozen=True)
class RowError:
    row: int
    field: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "field": self.field, "reason": self.reason}


@dataclass(frozen=True)
class ImportRow:
    row: int
    name: str
    phone_number: str  # E.164
    email: str
    tags: list[str]
    is_active: bool | None  # None: the file does not say (a new contact is active)
    custom_fields: dict[str, str] = field(default_factory=dict)
    opted_out: bool | None = None  # None: the file does not say


@dataclass
class ParsedCsv:
    columns: tuple[str, ...]  # the known columns the file has
    ignored_columns: list[str]
    custom_columns: tuple[str, ...] = ()  # the custom field keys the file fills
    rows: list[ImportRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    failed: int = 0


def _file_error(message: str) -> DomainError:
    return DomainError(
        ErrorCode.VALIDATION_ERROR, f"The CSV file is not valid: {message}", {"file": [message]}
    )


def csv_decode(data: bytes) -> str:
    """Bytes of a CSV (optionally gzip-compressed) -> text; raises DomainError."""
    if data[:2] == _GZIP_MAGIC:
        inflater = zlib.decompressobj(wbits=31)
        try:
            data = inflater.decompress(data, MAX_DECOMPRESSED_BYTES + 1)
        except zlib.error:
            raise _file_error("it looks gzip-compressed but cannot be decompressed") from None
        if len(data) > MAX_DECOMPRESSED_BYTES:
            raise DomainError(
                ErrorCode.PAYLOAD_TOO_LARGE,
                f"The decompressed CSV exceeds {MAX_DECOMPRESSED_BYTES} bytes",
                {"limit": MAX_DECOMPRESSED_BYTES},
            )
    text = _text(data)
    if "\x00" in text:
        # Databases refuse NUL in text; such a file is a spreadsheet or UTF-16, not our CSV.
        raise _file_error("it contains NUL bytes; save it as CSV (UTF-8)")
    return text


def _text(data: bytes) -> str:
    if data[:2] in _UTF16_BOMS:
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise _file_error("it starts like UTF-16 text but is not valid UTF-16") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        raise _file_error(
            "it is neither UTF-8 nor Windows-1252 (Excel) text; in Excel, save it as "
            "“CSV UTF-8 (comma delimited)”"
        ) from None


def _delimiter(text: str) -> str:
    """The separator that makes the first line name the required columns (a comma when
    none does, so the header error names what is missing)."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    for delimiter in _DELIMITERS:
        cells = next(csv.reader([first], delimiter=delimiter), [])
        if set(REQUIRED_COLUMNS) <= {cell.strip().lower() for cell in cells}:
            return delimiter
    return ","


def custom_column_key(cell: str) -> str:
    """The custom field key a header cell names: "Order ID" -> "order_id"."""
    return "_".join(cell.strip().lower().replace("-", " ").split())


def _header(cells: Sequence[str]) -> tuple[dict[str, int], dict[str, int], list[str]]:
    """Known columns and custom field keys by position, and the ignored header cells."""
    positions: dict[str, int] = {}
    custom: dict[str, int] = {}
    ignored: list[str] = []
    for index, cell in enumerate(cells):
        # "Phone Number" and "Opted-Out" name the known columns as custom columns' headers
        # name their keys: an opt-out column passed over would import its phones as sendable.
        name = key = custom_column_key(cell)
        if name in COLUMNS:
            if name in positions:
                raise _file_error(f"the column '{name}' appears twice")
            positions[name] = index
        elif name and key_error(key) is None:
            if key in custom:
                raise _file_error(f"the custom field column '{key}' appears twice")
            custom[key] = index
        elif name:
            ignored.append(cell.strip())
    missing = [c for c in REQUIRED_COLUMNS if c not in positions]
    if missing:
        raise _file_error(
            f"the header row lacks {', '.join(missing)}; expected columns: {', '.join(COLUMNS)}"
        )
    return positions, custom, ignored


def _records(text: str) -> list[tuple[int, list[str]]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
    records: list[tuple[int, list[str]]] = []
    number = 0
    try:
        for cells in reader:
            number += 1
            if any(cell.strip() for cell in cells):
                records.append((number, cells))
    except csv.Error as exc:
        raise _file_error(f"row {number + 1}: {exc}") from None
    return records


def _cell(positions: dict[str, int], cells: list[str], column: str) -> str:
    index = positions.get(column)
    # An export's formula guard ('=…) comes off, so an export imports back unchanged.
    return restore(cells[index]) if index is not None and index < len(cells) else ""


def _parse_row(
    number: int, cell: Callable[[str], str], custom: Sequence[tuple[str, str]] = ()
) -> ImportRow | list[RowError]:
    """One data row -> the row to import, or every error in it. ``custom`` holds the row's
    (key, cell) pairs of custom field columns."""
    errors: list[RowError] = []
    name = cell("name").strip()
    if not name:
        errors.append(RowError(number, "name", "is required"))
    elif len(name) > MAX_NAME_LENGTH:
        errors.append(RowError(number, "name", f"is longer than {MAX_NAME_LENGTH} characters"))
    phone = ""
    try:
        phone = normalize_phone(cell("phone_number"))
    except InvalidPhone as exc:
        errors.append(RowError(number, "phone_number", f"'{exc.raw}' {exc.reason}"))
    email = cell("email").strip()
    if email:
        try:
            if len(email) > MAX_EMAIL_LENGTH:
                raise ValidationError("too long")
            validate_email(email)
        except ValidationError:
            errors.append(RowError(number, "email", f"'{email[:60]}' is not a valid email"))
    tags: list[str] = []
    try:
        tags = split_tags(cell("tags"))
    except TagError as exc:
        errors.append(RowError(number, "tags", str(exc)))
    active_cell = cell("is_active").strip()
    is_active = _ACTIVE.get(active_cell.lower()) if active_cell else None
    if active_cell and is_active is None:
        errors.append(RowError(number, "is_active", f"'{active_cell[:20]}' is not true or false"))
    opted_out_cell = cell("opted_out").strip()
    opted_out = _OPTED_OUT.get(opted_out_cell.lower()) if opted_out_cell else None
    if opted_out_cell and opted_out is None:
        errors.append(
            RowError(
                number,
                "opted_out",
                f"'{opted_out_cell[:20]}' is not one of true, false, yes, no, 1, 0, ndiyo, hapana",
            )
        )
    custom_fields: dict[str, str] = {}
    for key, raw in custom:
        value = raw.strip()
        if len(value) > MAX_VALUE_LENGTH:
            errors.append(RowError(number, key, f"is longer than {MAX_VALUE_LENGTH} characters"))
        elif value:
            custom_fields[key] = value
    if len(custom_fields) > MAX_KEYS:
        # Per contact, as through the API: a wide file (or an export of contacts with
        # different keys) is fine while no row fills more than the limit.
        errors.append(
            RowError(
                number,
                "custom_fields",
                f"fills {len(custom_fields)} custom fields; a contact has at most {MAX_KEYS}",
            )
        )
    if errors:
        return errors
    return ImportRow(
        row=number,
        name=name,
        phone_number=phone,
        email=email,
        tags=tags,
        is_active=is_active,
        custom_fields=custom_fields,
        opted_out=opted_out,
    )


def csv_parse(text: str, *, max_rows: int = MAX_ROWS) -> ParsedCsv:
    """Validate every row; rows with an error are reported, not returned. A phone number seen
    on an earlier row makes a later row fail. Raises DomainError when the file as a whole is
    unusable (no header, required columns missing, too many rows)."""
    records = _records(text)
    if not records:
        raise _file_error("it is empty; the first row must name the columns")
    positions, custom, ignored = _header(records[0][1])
    data = records[1:]
    if len(data) > max_rows:
        raise DomainError(
            ErrorCode.VALIDATION_ERROR,
            f"The file has {len(data)} rows; at most {max_rows} can be imported at once",
            {"file": [f"At most {max_rows} rows per import; this file has {len(data)}"]},
        )
    parsed = ParsedCsv(
        columns=tuple(c for c in COLUMNS if c in positions),
        ignored_columns=ignored,
        custom_columns=tuple(custom),
    )
    first_row_of: dict[str, int] = {}
    for number, cells in data:
        cell = functools.partial(_cell, positions, cells)
        row_custom = [(key, _cell(custom, cells, key)) for key in custom]
        outcome = _parse_row(number, cell, row_custom)
        if isinstance(outcome, ImportRow):
            # Only rows that would be imported claim their number, so a bad earlier row does
            # not make a good later one a "duplicate".
            first = first_row_of.setdefault(outcome.phone_number, number)
            if first == number:
                parsed.rows.append(outcome)
                continue
            duplicate = f"{outcome.phone_number} is a duplicate of row {first}"
            outcome = [RowError(number, "phone_number", duplicate)]
        parsed.failed += 1
        parsed.errors.extend(outcome)
    return parsed


def csv_lines(rows: Iterable[Sequence[Any]], custom_keys: Sequence[str] = ()) -> Iterator[str]:
    """Rows in COLUMNS order then the custom fields object (tags a list, booleans as bools)
    -> CSV text lines, header first, with a column per key of ``custom_keys``. No cell is
    one a spreadsheet would run as a formula (``mifumo.csv_cells``)."""
    yield from spreadsheet_lines(
        itertools.chain(
            [(*COLUMNS, *custom_keys)],
            (
                (
                    name,
                    phone,
                    email,
                    join_tags(tags),
                    "true" if is_active else "false",
                    "true" if opted_out else "false",
                    *((custom or {}).get(key, "") for key in custom_keys),
                )
                for name, phone, email, tags, is_active, opted_out, custom in rows
            ),
        )
    )
