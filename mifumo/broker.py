"""The Redis broker transport, publishing through one client per channel.

kombu's Redis channel builds a new ``redis.Redis`` (and its table of response callbacks)
for every message it publishes; with one dispatch task per send that showed up in request
profiles. The client is thread-safe and shares the channel's connection pool either way.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from kombu.transport import TRANSPORT_ALIASES, redis  # type: ignore[attr-defined]


class Channel(redis.Channel):
    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous=True)
        client = self.__dict__.get("_publish_client")
        if client is None:
            client = self.__dict__["_publish_client"] = super()._create_client()
        return client


class Transport(redis.Transport):
    Channel = Channel


TRANSPORT_ALIASES["mifumo"] = "mifumo.broker:Transport"


def broker_url(redis_url: str) -> str:
    """Celery's broker URL for a Redis URL: ``unix:///path?db=N`` (a Unix socket, as the
    embedded Redis listens) becomes the transport's socket form; the rest are taken as is."""
    parts = urlsplit(redis_url)
    if parts.scheme != "unix":
        return redis_url
    db = parse_qs(parts.query).get("db", ["0"])[0]
    # "<transport>+socket://" names the transport in the URL itself, as "redis+socket://"
    # does for the stock one.
    return f"mifumo+socket://{parts.path}?virtual_host={db}"
