from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from integration.auth import ApiPrincipal
from integration.models import Permission
from mifumo.errors import DomainError, ErrorCode


def required_permission(request: Request, view: Any) -> str:
    """read for GET, write for changes, unless the view says otherwise."""
    explicit = getattr(view, "required_permission", None)
    if explicit:
        return str(explicit)
    return Permission.READ if request.method in SAFE_METHODS else Permission.WRITE


class HasKeyPermission(BasePermission):
    message = "This API key lacks the permission this endpoint needs"

    def has_permission(self, request: Request, view: Any) -> bool:
        principal = request.user
        if not isinstance(principal, ApiPrincipal):
            return False
        needed = required_permission(request, view)
        if principal.api_key.allows(needed):
            return True
        self.message = (
            f"This endpoint needs the '{needed}' permission; this key has "
            f"'{principal.api_key.permission}'"
        )
        return False


def resolve_mode(principal: ApiPrincipal, test: bool | None, what: str) -> bool:
    """Whether a new key or endpoint is a test one: as asked, else the calling key's mode. A
    test key makes test ones only."""
    if test is None:
        return principal.test_only
    if principal.test_only and not test:
        raise DomainError(
            ErrorCode.PERMISSION_DENIED,
            f"A test key can only make test {what}",
            {"test": ["must be true (or left out) with a test key"]},
        )
    return test
