"""CSV cells a spreadsheet shows as text and never runs (OWASP's advice on CSV injection).

A spreadsheet treats a cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return as a formula; names, routes and other text people type can start that way. Such a
cell is written with a leading ``'``, which spreadsheets take as "this is text" and do not
show. Plain numbers (``+255712345678``, ``-12.50``) are left alone: they run nothing. Every
CSV Mifumo hands out is written by ``spreadsheet_lines``, which neutralises each cell; imports
take the ``'`` off again (``restore``), so an export imports back unchanged.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator, Sequence

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)")


def neutralise(value: str) -> str:
    if value.startswith(TRIGGERS) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def restore(cell: str) -> str:
    """A cell as it was before ``neutralise``."""
    if cell.startswith("'") and cell[1:].startswith(TRIGGERS) and not _NUMBER.fullmatch(cell[1:]):
        return cell[1:]
    return cell


class _Line:
    """A write-only file for csv.writer that hands back what was written."""

    def write(self, value: str) -> str:
        return value


def spreadsheet_lines(rows: Iterable[Sequence[object]]) -> Iterator[str]:
    """Rows -> CSV text lines, each cell neutralised (``None`` is an empty cell)."""
    writer = csv.writer(_Line())
    for row in rows:
        yield writer.writerow([neutralise("" if cell is None else str(cell)) for cell in row])
