from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from rest_framework.parsers import BaseParser


class CsvBodyParser(BaseParser):
    """A raw ``text/csv`` body, as the bytes of the field ``file`` (the name a multipart
    upload uses), so that the import reads both the same way."""

    media_type = "text/csv"

    def parse(
        self,
        stream: IO[Any],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        return {"file": bytes(stream.read())}
