"""Writes to message templates. Names are unique per account, case-insensitively
(``mifumo.named``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import transaction

from integration.audit import Action, AuditContext
from integration.models import Account
from message_templates.models import MessageTemplate
from mifumo.named import save_named, update_named

UPDATABLE_FIELDS = ("name", "text")


def _save(template: MessageTemplate, **kwargs: Any) -> None:
    save_named(template, what="template", id_key="template_id", **kwargs)


def _record(audit: AuditContext | None, action: str, template: MessageTemplate) -> None:
    if audit is not None:
        audit.record(
            account=template.account_id,
            action=action,
            target=template.name,
            details={"id": template.pk},
        )


@transaction.atomic
def template_create(
    *, account: Account, name: str, text: str, audit: AuditContext | None = None
) -> MessageTemplate:
    """Expects validated fields (TemplateIn)."""
    template = MessageTemplate(account=account, name=name, text=text)
    _save(template, force_insert=True)
    _record(audit, Action.TEMPLATE_CREATED, template)
    return template


@transaction.atomic
def template_update(
    *, template: MessageTemplate, data: Mapping[str, Any], audit: AuditContext | None = None
) -> MessageTemplate:
    update_named(template, data, UPDATABLE_FIELDS, _save)
    _record(audit, Action.TEMPLATE_UPDATED, template)
    return template


@transaction.atomic
def template_delete(*, template: MessageTemplate, audit: AuditContext | None = None) -> None:
    _record(audit, Action.TEMPLATE_DELETED, template)
    template.delete()
