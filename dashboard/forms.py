from __future__ import annotations

import re
import zoneinfo
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm

from contacts.custom_fields import CustomFieldError, parse_custom_fields
from contacts.tags import TagError, normalize_tags
from dashboard.selectors import PERIODS
from integration.models import LedgerEntry, Membership, Permission
from mifumo.days import day_end, today
from mifumo.once import new_token
from segments.criteria import KEYS, CriteriaError, criteria_parse
from sms.models import Recipient
from sms.personalise import TemplateError, parse_template
from webhooks.endpoints import DEFAULT_GRACE_SECONDS, MAX_GRACE_SECONDS
from webhooks.models import SUBSCRIBABLE_EVENTS, EventType

MAX_IMPORT_BYTES = 10 * 1024 * 1024
# Spaces stay inside a number ("0754 000 001"); commas, semicolons and lines separate.
_RECIPIENT_SEPARATORS = re.compile(r"[,;\r\n]+")
_TAG_SEPARATORS = re.compile(r"[,;|]")
DASHBOARD_SOURCE = "dashboard"


def date_input(label: str) -> forms.DateField:
    return forms.DateField(required=False, label=label, widget=forms.DateInput({"type": "date"}))


class DateRangeMixin(forms.Form):
    """``start`` and ``end`` dates (inclusive days); end before start is an error, not an
    empty result."""

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("start"), data.get("end")
        if start and end and end < start:
            self.add_error("end", "“To” is before “From”: choose a later day, or swap them.")
        return data


def key_choices(keys: Any) -> list[tuple[str, str]]:
    """API keys as choices, revoked ones marked (they still sent what they sent)."""
    return [
        (str(k.pk), f"{k.name} ({k.prefix}…){' · revoked' if k.revoked_at else ''}") for k in keys
    ]


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


class CurrentCodeForm(CodeForm):
    """A code of the authenticator app in use, asked before a new app replaces it; beside
    the form that turns two-factor off, so its field has names of its own."""

    prefix = "current"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["code"]
        field.label = "Code from the app in use"
        field.help_text = "The 6-digit code your current authenticator app shows now."
        field.widget.attrs.pop("autofocus", None)


def new_nonce() -> str:
    return new_token()


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
        return day_end(value)


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
    schedule_at = forms.DateTimeField(
        required=False,
        label="Send later (optional)",
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text="Leave empty to send now.",
    )
    # The browser's time zone (filled by the page's script); without it, UTC.
    tz = forms.CharField(required=False, widget=forms.HiddenInput, max_length=64)
    # One preview, one send: a resubmitted confirmation must not send twice.
    nonce = forms.CharField(required=False, widget=forms.HiddenInput, max_length=64)

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

    def clean_message(self) -> str:
        # Browsers send a text box's line breaks as CR LF; an SMS line break is one LF, and
        # the live counter (which sees the box's own text) counts it as one character.
        return str(self.cleaned_data["message"]).replace("\r\n", "\n")

    def clean_tz(self) -> str:
        name = str(self.cleaned_data.get("tz") or "")
        try:
            zoneinfo.ZoneInfo(name)
        except (ValueError, zoneinfo.ZoneInfoNotFoundError):
            return "UTC"
        return name or "UTC"

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not data.get("recipients") and not data.get("segments"):
            self.add_error("recipients", "Give at least one number or choose a segment.")
        return data

    @property
    def schedule_time(self) -> datetime | None:
        """The chosen moment in the browser's time zone (the send checks it is ahead)."""
        value: datetime | None = self.cleaned_data.get("schedule_at")
        if value is None:
            return None
        zone = zoneinfo.ZoneInfo(self.cleaned_data.get("tz") or "UTC")
        return value.replace(tzinfo=zone)


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
        help_text="Columns: name, phone_number, email, tags (separated by ';' or '|'), "
        "is_active. UTF-8 or Windows (Excel) text; commas, semicolons or tabs between columns.",
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


class MessageSearchForm(DateRangeMixin):
    q = forms.CharField(
        required=False,
        label="Phone or message ID",
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "+255712345678 or msg_…"}),
    )
    status = forms.ChoiceField(
        required=False, choices=STATUS_CHOICES, label="With a recipient that is"
    )
    key = forms.ChoiceField(required=False, label="Sent with")
    start = date_input("From")
    end = date_input("To")

    def __init__(self, *args: Any, keys: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        key_field = self.fields["key"]
        assert isinstance(key_field, forms.ChoiceField)
        key_field.choices = [
            ("", "Any key or the dashboard"),
            (DASHBOARD_SOURCE, "The dashboard"),
            *keys,
        ]


class ActivityFilterForm(DateRangeMixin):
    action = forms.ChoiceField(required=False, label="Action")
    actor = forms.TypedChoiceField(required=False, coerce=int, empty_value=None, label="Who")
    q = forms.CharField(
        required=False, label="Target contains", widget=forms.TextInput(attrs={"type": "search"})
    )
    start = date_input("From")
    end = date_input("To")

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
    key = forms.TypedChoiceField(required=False, coerce=int, empty_value=None, label="API key")

    def __init__(self, *args: Any, keys: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        key_field = self.fields["key"]
        assert isinstance(key_field, forms.ChoiceField)
        key_field.choices = [("", "Every key"), *keys]


class SearchForm(forms.Form):
    q = forms.CharField(
        required=False, label="Search", widget=forms.TextInput(attrs={"type": "search"})
    )


class ContactForm(forms.Form):
    name = forms.CharField(max_length=200)
    phone_number = forms.CharField(
        max_length=32,
        label="Phone number",
        help_text="A mobile number, e.g. 0712 345 678 or +255712345678.",
        widget=forms.TextInput(attrs={"inputmode": "tel", "autocomplete": "off"}),
    )
    email = forms.EmailField(required=False, max_length=254)
    tags = forms.CharField(
        required=False,
        max_length=2000,
        help_text="Separated by commas, e.g. customer, vip.",
    )
    custom_fields = forms.CharField(
        required=False,
        max_length=10_000,
        label="Custom fields",
        widget=forms.Textarea(attrs={"rows": 4, "autocomplete": "off"}),
        help_text=(
            "One per line as key: value, e.g. city: Arusha. Keys are lower-case letters, "
            "digits and _; messages use them as {{city}}."
        ),
    )
    is_active = forms.BooleanField(required=False, initial=True, label="Active")

    def clean_tags(self) -> list[str]:
        return _tags(self.cleaned_data.get("tags"))

    def clean_custom_fields(self) -> dict[str, str]:
        return _key_value_lines(self.cleaned_data.get("custom_fields"))


def _key_value_lines(raw: object) -> dict[str, str]:
    """``key: value`` lines -> custom fields, checked as the API checks them."""
    fields: dict[str, str] = {}
    for number, line in enumerate(str(raw or "").splitlines(), 1):
        if not line.strip():
            continue
        key, colon, value = line.partition(":")
        if not colon:
            raise forms.ValidationError(f"Line {number}: write it as key: value.")
        fields[key.strip()] = value.strip()
    try:
        return {k: str(v) for k, v in parse_custom_fields(fields).items()}
    except CustomFieldError as exc:
        raise forms.ValidationError(str(exc)) from None


def custom_fields_text(fields: dict[str, object]) -> str:
    """A contact's custom fields as the form's lines."""
    return "\n".join(f"{key}: {value}" for key, value in sorted(fields.items()))


def _tags(raw: object) -> list[str]:
    parts = [p for p in _TAG_SEPARATORS.split(str(raw or "")) if p.strip()]
    try:
        return normalize_tags(parts)
    except TagError as exc:
        raise forms.ValidationError(str(exc)) from None


TRI_STATE = [("", "Either"), ("true", "Yes"), ("false", "No")]
# Form field -> criteria key, for the keys a form field maps to one to one.
_CRITERIA_FIELDS = KEYS


class MessageTemplateForm(forms.Form):
    name = forms.CharField(max_length=100)
    text = forms.CharField(
        max_length=2000,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 5}),
        help_text=(
            "Placeholders: {{name}}, {{phone}}, a custom field such as {{city}}, or "
            "{{city|a default}} for contacts without it."
        ),
    )

    def clean_name(self) -> str:
        return str(self.cleaned_data["name"]).strip()

    def clean_text(self) -> str:
        text = str(self.cleaned_data["text"]).replace("\r\n", "\n")
        if not text.strip():
            raise forms.ValidationError("This field is required.")
        try:
            parse_template(text)
        except TemplateError as exc:
            raise forms.ValidationError(exc.problems) from None
        return text


class SegmentForm(forms.Form):
    name = forms.CharField(max_length=100)
    description = forms.CharField(
        required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2})
    )
    tags = forms.CharField(
        required=False,
        max_length=2000,
        label="Has any of the tags",
        help_text="Separated by commas; empty: any contact.",
    )
    tags_all = forms.CharField(
        required=False,
        max_length=2000,
        label="Has all of the tags",
        help_text="Separated by commas.",
    )
    is_active = forms.ChoiceField(required=False, choices=TRI_STATE, label="Active")
    opted_out = forms.ChoiceField(required=False, choices=TRI_STATE, label="Opted out")
    created_after = date_input("Added on or after")
    created_before = date_input("Added before")
    custom_fields = forms.CharField(
        required=False,
        max_length=10_000,
        label="Has the custom field values",
        widget=forms.Textarea(attrs={"rows": 2, "autocomplete": "off"}),
        help_text="One per line as key: value, e.g. city: Arusha.",
    )

    @classmethod
    def initial_from(cls, name: str, description: str, criteria: dict[str, Any]) -> dict[str, Any]:
        initial: dict[str, Any] = {"name": name, "description": description}
        for key in ("tags", "tags_all"):
            if key in criteria:
                initial[key] = ", ".join(criteria[key])
        for key in ("is_active", "opted_out"):
            if key in criteria:
                initial[key] = "true" if criteria[key] else "false"
        for key in ("created_after", "created_before"):
            if key in criteria:
                initial[key] = str(criteria[key])[:10]
        if "custom_fields" in criteria:
            initial["custom_fields"] = custom_fields_text(criteria["custom_fields"])
        return initial

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        raw: dict[str, Any] = {}
        for key in ("tags", "tags_all"):
            try:
                tags = _tags(data.get(key))
            except forms.ValidationError as exc:
                self.add_error(key, exc)
                continue
            if tags:
                raw[key] = tags
        for key in ("is_active", "opted_out"):
            if data.get(key):
                raw[key] = data[key] == "true"
        for key in ("created_after", "created_before"):
            if data.get(key):
                raw[key] = data[key].isoformat()
        try:
            custom = _key_value_lines(data.get("custom_fields"))
        except forms.ValidationError as exc:
            self.add_error("custom_fields", exc)
            custom = {}
        if custom:
            raw["custom_fields"] = custom
        try:
            data["criteria"] = criteria_parse(raw)
        except CriteriaError as exc:
            for key, messages in exc.errors.items():
                self.add_error(key if key in _CRITERIA_FIELDS else None, messages)
        return data


class InviteForm(forms.Form):
    email = forms.EmailField(label="E-mail address", max_length=254)
    role = forms.ChoiceField(
        choices=Membership.Role.choices,
        initial=Membership.Role.MEMBER,
        help_text="Owners manage the team; admins change keys, webhooks and contacts and "
        "send; members only look.",
    )


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Membership.Role.choices)


class AcceptInvitationForm(UserCreationForm):
    """A new login for someone invited: username and password; the e-mail is the invited
    address."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["username"].widget.attrs.update(autocomplete="username")


class ThresholdForm(forms.Form):
    threshold = forms.DecimalField(
        required=False,
        max_digits=14,
        decimal_places=2,
        min_value=Decimal("0.01"),
        label="Alert when the balance falls below",
        help_text="Owners and admins get an e-mail and subscribed webhooks an "
        "account.low_balance event. Leave empty for no alert.",
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
        error_messages={
            "invalid": "Enter an amount such as 5000 or 12.50.",
            "max_decimal_places": "Use at most two decimal places.",
        },
    )


KIND_CHOICES = [("", "Every kind"), *LedgerEntry.Kind.choices]


class LedgerFilterForm(DateRangeMixin):
    kind = forms.ChoiceField(required=False, choices=KIND_CHOICES, label="Kind")
    start = date_input("From")
    end = date_input("To")
