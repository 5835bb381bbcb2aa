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


def _formula(value: str) -> bool:
    """Whether a spreadsheet would run ``value`` once its leading apostrophes are gone."""
    rest = value.lstrip("'")
    return rest.startswith(TRIGGERS) and not _NUMBER.fullmatch(rest)


def neutralise(value: str) -> str:
    # A value that already starts with ' before a trigger ("'=x" typed as a name) takes
    # one more, so that ``restore`` gives it back whole.
    return "'" + value if _formula(value) else value


def restore(cell: str) -> str:
    """A cell as it was before ``neutralise``."""
    return cell[1:] if cell.startswith("'") and _formula(cell) else cell


class _Line:
    """A write-only file for csv.writer that hands back what was written."""

    def write(self, value: str) -> str:
        return value


def spreadsheet_lines(rows: Iterable[Sequence[object]]) -> Iterator[str]:
    """Rows -> CSV text lines, each cell neutralised (``None`` is an empty cell)."""
    writer = csv.writer(_Line())
    for row in rows:
        yield writer.writerow([neutralise("" if cell is None else str(cell)) for cell in row])
