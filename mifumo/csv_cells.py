"""CSV cells a spreadsheet shows as text and never runs (OWASP's advice on CSV injection).

A spreadsheet treats a cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return as a formula; names, routes and other text people type can start that way. Such a
cell is written with a leading ``'``, which spreadsheets take as "this is text" and do not
show. Plain numbers (``+255712345678``, ``-12.50``) are left alone: they run nothing. Every
CSV Mifumo hands out goes through ``neutralise``; imports take the ``'`` off again
(``restore``), so an export imports back unchanged.
"""

from __future__ import annotations

import re

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
