"""Request bodies sent in chunks (``Transfer-Encoding: chunked``, no ``Content-Length``).

Django reads as many body bytes as ``Content-Length`` says, so a chunked body reached the
views as an empty one. When the server has de-chunked the body and marks where it ends
(``wsgi.input_terminated``, as granian and gunicorn do), ``ChunkedBodies`` reads it first, up
to one byte past the largest body limit, and hands Django a body of known length: the usual
limits (413) then apply. Where the server cannot say where it ends, the API answers 411
(``mifumo.api.middleware``).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def is_chunked_without_length(environ: dict[str, Any]) -> bool:
    chunked = "chunked" in str(environ.get("HTTP_TRANSFER_ENCODING", "")).lower()
    return chunked and not environ.get("CONTENT_LENGTH")


class ChunkedBodies:
    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if is_chunked_without_length(environ) and environ.get("wsgi.input_terminated"):
            most = max(settings.MIFUMO_MAX_BODY_BYTES, settings.MIFUMO_MAX_IMPORT_BODY_BYTES)
            body = environ["wsgi.input"].read(most + 1)
            # Over every limit: only its length is passed on, for the 413.
            environ["wsgi.input"] = io.BytesIO(body if len(body) <= most else b"")
            environ["CONTENT_LENGTH"] = str(len(body))
        return self.app(environ, start_response)
