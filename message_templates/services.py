"""Writes to message templates. Names are unique per account, case-insensitively
(``mifumo.named``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from integration.models import Account
from message_templates.models import MessageTemplate
from mifumo.named import save_named, update_named

UPDATABLE_FIELDS = ("name", "text")


def _save(template: MessageTemplate, **kwargs: Any) -> None:
    save_named(template, what="template", id_key="template_id", **kwargs)


def template_create(*, account: Account, name: str, text: str) -> MessageTemplate:
    """Expects validated fields (TemplateIn)."""
    template = MessageTemplate(account=account, name=name, text=text)
    _save(template, force_insert=True)
    return template


def template_update(*, template: MessageTemplate, data: Mapping[str, Any]) -> MessageTemplate:
    return update_named(template, data, UPDATABLE_FIELDS, _save)


def template_delete(*, template: MessageTemplate) -> None:
    template.delete()
