"""Reads over message templates; every one is scoped to an account."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet

from integration.models import Account
from message_templates.models import MessageTemplate
from mifumo.errors import DomainError, ErrorCode


@dataclass(frozen=True)
class TemplatePage:
    templates: list[MessageTemplate]
    total: int


def template_get(*, account: Account, template_id: str) -> MessageTemplate:
    template = MessageTemplate.objects.filter(account=account, pk=template_id).first()
    if template is None:
        raise DomainError(ErrorCode.NOT_FOUND, "Template not found", {"template_id": template_id})
    return template


def templates_of(*, account: Account) -> QuerySet[MessageTemplate]:
    """The account's templates, newest first."""
    return MessageTemplate.objects.filter(account=account).order_by("-created_at", "-id")


def template_list(*, account: Account, limit: int, offset: int) -> TemplatePage:
    templates = templates_of(account=account)
    total = templates.count()
    page = list(templates[offset : offset + limit]) if offset < total else []
    return TemplatePage(templates=page, total=total)
