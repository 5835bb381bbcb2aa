"""Every POST of the API honours Idempotency-Key, except the few named here with their
reason: a new POST cannot go without it unnoticed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from integration.idempotency import is_idempotent
from integration.views import ApiView

# Each talks to the network or answers with a raw API key, which no idempotency record keeps.
NOT_IDEMPOTENT = {
    "integration.apis.KeyCreateApi",
    "integration.apis.KeyRotateApi",
    "webhooks.apis.WebhookTestApi",
}


def _views(patterns: list[URLPattern | URLResolver]) -> Iterator[type]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _views(entry.url_patterns)
        else:
            view = getattr(entry.callback, "view_class", None)
            if view is not None:
                yield view


def _api_posts() -> dict[str, type[ApiView]]:
    return {
        f"{view.__module__}.{view.__qualname__}": view
        for view in _views(get_resolver().url_patterns)
        if issubclass(view, ApiView) and hasattr(view, "post")
    }


def test_every_api_post_is_idempotent_or_named_as_an_exception() -> None:
    posts = _api_posts()
    assert "sms.apis.SendApi" in posts
    forgotten = sorted(
        name
        for name, view in posts.items()
        if name not in NOT_IDEMPOTENT and not is_idempotent(view.post)  # type: ignore[attr-defined]
    )
    assert forgotten == []


def test_the_exceptions_are_real_posts_without_idempotency() -> None:
    posts = _api_posts()
    assert posts.keys() >= NOT_IDEMPOTENT
    for name in NOT_IDEMPOTENT:
        assert not is_idempotent(posts[name].post)  # type: ignore[attr-defined]
        assert posts[name].idempotent_post is False


def test_a_post_whose_decorator_and_flag_disagree_fails_when_defined() -> None:
    from rest_framework.request import Request
    from rest_framework.response import Response

    from integration.idempotency import idempotent

    def handler(self: ApiView, request: Request) -> Response:
        return Response({})

    with pytest.raises(TypeError, match="disagree"):
        type("Forgotten", (ApiView,), {"post": handler})
    with pytest.raises(TypeError, match="disagree"):
        type("Unwanted", (ApiView,), {"post": idempotent(handler), "idempotent_post": False})
    assert issubclass(type("Fine", (ApiView,), {"post": idempotent(handler)}), ApiView)
