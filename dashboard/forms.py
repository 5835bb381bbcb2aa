from __future__ import annotations

import re
import secrets
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django import forms
from django.contrib.auth.forms import AuthenticationForm

from dashboard.selectors import PERIODS, today
from integration.models import Permission
from sms.models import Recipient
from webhooks.models import SUBSCRIBABLE_EVENTS, EventType
from webhooks.services import DEFAULT_GRACE_SECONDS, MAX_GRACE_SECONDS

MAX_IMPORT_BYTES = 10 * 1024 * 1024
# Spaces stay inside a number ("0754 000 001"); commas, semicolons and lines separate.
_RECIPIENT_SEPARATORS = re.compile(r"[,;\r\n]+")


class LoginForm(AuthenticationForm):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["username"].widget.attrs.update(autocomplete="username", autofocus=True)
        self.fields["password"].widget.attrs.update(autocomplete="current-password")


class CodeForm(forms.Form):
    code = forms.CharField(
        max_length=12,
        label="Authentication code",
        help_text="The 6-digit code your authenticator app shows now.",
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}
        ),
    )


def new_nonce() -> str:
    return secrets.token_urlsafe(16)


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="Where the key is used, e.g. 'Billing app'.")
    permission = forms.ChoiceField(
        choices=[
            (Permission.READ.value, "Read: view messages, reports and balance"),
            (Permission.WRITE.value, "Write: also send SMS and manage contacts"),
            (Permission.ADMIN.value, "Admin: also manage keys and webhooks"),
        ],
        initial=Permission.WRITE.value,
        widget=forms.RadioSelect,
    )
    mode = forms.ChoiceField(
        choices=[
            ("live", "Live: sends real SMS and is charged"),
            ("test", "Test: simulated delivery, never charged"),
        ],
        initial="live",
        widget=forms.RadioSelect,
        label="Environment",
    )
    expires_on = forms.DateField(
        required=False,
        label="Expires after (optional)",
        help_text="The key stops working at the end of this day (UTC). Leave empty for none.",
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    # One form, one key: a resubmitted page (reload, back button) must not mint another.
    nonce = forms.CharField(widget=forms.HiddenInput, max_length=64)

    def clean_name(self) -> str:
        name = str(self.cleaned_data["name"]).strip()
        if not name:
            raise forms.ValidationError("Give the key a name.")
        return name

    def clean_expires_on(self) -> date | None:
        value: date | None = self.cleaned_data.get("expires_on")
        if value is not None and value < today():
            raise forms.ValidationError("The expiry date is in the past.")
        return value

    @property
    def expires_at(self) -> datetime | None:
        value = self.cleaned_data.get("expires_on")
        if value is None:
            return None
        return datetime.combine(value + timedelta(days=1), time.min, tzinfo=UTC)


class SendMessageForm(forms.Form):
    recipients = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "autocomplete": "off"}),
        help_text="Mobile numbers separated by commas or new lines, e.g. +255712345678.",
    )
    segments = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Every member of the chosen segments receives the message too.",
    )
    sender_id = forms.ChoiceField(label="Sender ID")
    message = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 5, "data-counter": "message-count"}),
        max_length=2000,
    )

    def __init__(
        self,
        *args: Any,
        sender_ids: list[str],
        segments: list[tuple[str, str]],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        sender_field = self.fields["sender_id"]
        assert isinstance(sender_field, forms.ChoiceField)
        sender_field.choices = [(v, v) for v in sender_ids]
        segment_field = self.fields["segments"]
        assert isinstance(segment_field, forms.MultipleChoiceField)
        segment_field.choices = segments
        if not segments:
            del self.fields["segments"]

    def clean_recipients(self) -> list[str]:
        raw = str(self.cleaned_data.get("recipients") or "")
        return [p.strip() for p in _RECIPIENT_SEPARATORS.split(raw) if p.strip()]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not data.get("recipients") and not data.get("segments"):
            self.add_error("recipients", "Give at least one number or choose a segment.")
        return data


EVENT_CHOICES = [(e, EventType(e).label) for e in SUBSCRIBABLE_EVENTS]


class WebhookForm(forms.Form):
    url = forms.CharField(
        label="Endpoint URL",
        max_length=2000,
        widget=forms.URLInput(attrs={"placeholder": "https://example.com/mifumo/webhook"}),
    )
    events = forms.MultipleChoiceField(
        choices=EVENT_CHOICES,
        initial=list(SUBSCRIBABLE_EVENTS),
        widget=forms.CheckboxSelectMultiple,
    )
    description = forms.CharField(max_length=255, required=False)


MODE_CHOICES = [
    ("live", "Live: receives the events of messages sent with live keys or from here"),
    ("test", "Test: receives the events of messages sent with test keys"),
]


class WebhookCreateForm(WebhookForm):
    mode = forms.ChoiceField(
        choices=MODE_CHOICES,
        initial="live",
        required=False,
        widget=forms.RadioSelect,
        label="Traffic",
    )

    def clean_mode(self) -> str:
        return str(self.cleaned_data.get("mode") or "live")


class WebhookEditForm(WebhookForm):
    active = forms.BooleanField(required=False, label="Active (receives events)")


GRACE_CHOICES = [
    (0, "Stop signing with the old secret now"),
    (3600, "Keep the old secret for 1 hour"),
    (DEFAULT_GRACE_SECONDS, "Keep the old secret for 24 hours"),
    (MAX_GRACE_SECONDS, "Keep the old secret for 7 days"),
]


class RotateSecretForm(forms.Form):
    grace_seconds = forms.TypedChoiceField(
        choices=GRACE_CHOICES, coerce=int, initial=DEFAULT_GRACE_SECONDS, label="Old secret"
    )


class SenderIdRequestForm(forms.Form):
    value = forms.CharField(
        max_length=15,
        label="Sender ID",
        help_text="Up to 11 letters and digits (e.g. MYSHOP), or a phone number.",
    )
    purpose = forms.CharField(
        max_length=255,
        required=False,
        help_text="What the messages are for; the operator reviews this.",
    )


class ContactImportForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        help_text="Columns: name, phone_number, email, tags (separated by ';'), is_active.",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv,.gz"}),
    )
    on_duplicate = forms.ChoiceField(
        choices=[
            ("skip", "Skip numbers that are already contacts"),
            ("update", "Update those contacts from the file"),
        ],
        initial="skip",
        widget=forms.RadioSelect,
        label="Existing contacts",
    )

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        if upload.size > MAX_IMPORT_BYTES:
            raise forms.ValidationError(
                f"The file is {upload.size:,} bytes; the limit is {MAX_IMPORT_BYTES:,}."
            )
        return upload


STATUS_CHOICES = [("", "Any status")] + [(s.value, s.label) for s in Recipient.Status]


class MessageSearchForm(forms.Form):
    q = forms.CharField(
        required=False,
        label="Phone or message ID",
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "+255712345678 or msg_…"}),
    )
    status = forms.ChoiceField(
        required=False, choices=STATUS_CHOICES, label="With a recipient that is"
    )
    start = forms.DateField(required=False, label="From", widget=forms.DateInput({"type": "date"}))
    end = forms.DateField(required=False, label="To", widget=forms.DateInput({"type": "date"}))


class ActivityFilterForm(forms.Form):
    action = forms.ChoiceField(required=False, label="Action")
    actor = forms.TypedChoiceField(required=False, coerce=int, empty_value=None, label="Who")
    q = forms.CharField(
        required=False, label="Target contains", widget=forms.TextInput(attrs={"type": "search"})
    )
    start = forms.DateField(required=False, label="From", widget=forms.DateInput({"type": "date"}))
    end = forms.DateField(required=False, label="To", widget=forms.DateInput({"type": "date"}))

    def __init__(
        self,
        *args: Any,
        actions: list[tuple[str, str]],
        actors: list[tuple[int, str]],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        action_field = self.fields["action"]
        assert isinstance(action_field, forms.ChoiceField)
        action_field.choices = [("", "Any action"), *actions]
        actor_field = self.fields["actor"]
        assert isinstance(actor_field, forms.ChoiceField)
        actor_field.choices = [("", "Anyone"), *actors]


class PeriodForm(forms.Form):
    period = forms.TypedChoiceField(
        choices=[(p, f"Last {p} days") for p in PERIODS], coerce=int, required=False
    )


class SearchForm(forms.Form):
    q = forms.CharField(
        required=False, label="Search", widget=forms.TextInput(attrs={"type": "search"})
    )
