"""Variables read strictly at start, a value they cannot take stopping it with the variable
named: MIFUMO_DEFAULT_PRICE_PER_SEGMENT as money (the price of the +255 rule a new install's
migration creates), MIFUMO_ENCRYPTION_KEY as a Fernet key, seconds and ratios as numbers,
the webhook retry schedule as whole numbers."""

from __future__ import annotations

import importlib
from decimal import Decimal
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured

from mifumo.env import envfernet, envfloat, envints, envmoney
from sms.models import PriceRule

NAME = "MIFUMO_DEFAULT_PRICE_PER_SEGMENT"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("25", "25.00"), (" 12.5 ", "12.50"), ("0.01", "0.01"), ("", "10.00"), (None, "10.00")],
)
def test_the_price_is_read_as_money(monkeypatch: Any, value: str | None, expected: str) -> None:
    if value is None:
        monkeypatch.delenv(NAME, raising=False)
    else:
        monkeypatch.setenv(NAME, value)
    assert envmoney(NAME, "10.00") == Decimal(expected)


@pytest.mark.parametrize(
    "value", ["0", "-5", "ten", "1.001", "NaN", "Infinity", "1e9", "100000000"]
)
def test_a_price_that_is_not_money_stops_the_start_named(monkeypatch: Any, value: str) -> None:
    monkeypatch.setenv(NAME, value)
    with pytest.raises(ImproperlyConfigured, match=NAME):
        envmoney(NAME, "10.00")


@pytest.mark.django_db
def test_a_new_install_prices_tanzania_as_configured(settings: Any) -> None:
    migration = importlib.import_module("sms.migrations.0002_default_price_rule")
    PriceRule.objects.all().delete()
    settings.MIFUMO_DEFAULT_PRICE_PER_SEGMENT = Decimal("25.00")
    migration.create_default_rule(apps, None)
    rule = PriceRule.objects.get()
    assert (rule.country_code, rule.prefix, rule.price_per_segment) == ("255", "", Decimal("25.00"))


def test_an_encryption_key_is_a_fernet_key(monkeypatch: Any) -> None:
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("MIFUMO_ENCRYPTION_KEY", f" {key}\n")
    assert envfernet("MIFUMO_ENCRYPTION_KEY") == key
    monkeypatch.setenv("MIFUMO_ENCRYPTION_KEY", "")
    assert envfernet("MIFUMO_ENCRYPTION_KEY") is None


@pytest.mark.parametrize("value", ["notafernetkey", "a" * 44, "c2hvcnQ="])
def test_an_encryption_key_that_is_not_one_stops_the_start_named(
    monkeypatch: Any, value: str
) -> None:
    monkeypatch.setenv("MIFUMO_ENCRYPTION_KEY", value)
    with pytest.raises(ImproperlyConfigured, match="MIFUMO_ENCRYPTION_KEY"):
        envfernet("MIFUMO_ENCRYPTION_KEY")


def test_seconds_and_ratios_are_numbers(monkeypatch: Any) -> None:
    monkeypatch.setenv("MIFUMO_SWEEP_SECONDS", " 12.5 ")
    assert envfloat("MIFUMO_SWEEP_SECONDS", 30.0) == 12.5
    monkeypatch.setenv("MIFUMO_SWEEP_SECONDS", "")
    assert envfloat("MIFUMO_SWEEP_SECONDS", 30.0) == 30.0


@pytest.mark.parametrize("value", ["2s", "nan", "inf", "-inf", "half"])
def test_a_number_that_is_not_one_stops_the_start_named(monkeypatch: Any, value: str) -> None:
    monkeypatch.setenv("MIFUMO_SWEEP_SECONDS", value)
    with pytest.raises(ImproperlyConfigured, match="MIFUMO_SWEEP_SECONDS must be a number"):
        envfloat("MIFUMO_SWEEP_SECONDS", 30.0)


def test_the_retry_schedule_is_whole_numbers(monkeypatch: Any) -> None:
    name = "MIFUMO_WEBHOOK_RETRY_SCHEDULE"
    monkeypatch.setenv(name, "10, 60,600")
    assert envints(name, [30]) == [10, 60, 600]
    monkeypatch.delenv(name)
    assert envints(name, [30, 120]) == [30, 120]
    monkeypatch.setenv(name, "10,1m")
    with pytest.raises(ImproperlyConfigured, match=f"{name} must be whole numbers"):
        envints(name, [30])
