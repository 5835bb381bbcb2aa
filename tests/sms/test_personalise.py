"""Placeholders read and filled: the edge cases of the template syntax."""

import pytest

from sms.personalise import (
    Placeholder,
    RecipientValues,
    TemplateError,
    parse_template,
    parse_variables,
    render_all,
)


def render(text, values):
    template = parse_template(text)
    assert template is not None
    return template.render(values)


@pytest.mark.parametrize(
    "text",
    ["Hello", "Price {5}", "a } b { c", "{name}", "}} closes nothing", "{ {name} }", ""],
)
def test_text_without_a_placeholder_is_not_a_template(text):
    assert parse_template(text) is None


def test_name_phone_and_custom_keys_are_filled():
    values = {"name": "Asha", "phone": "+255712345678", "order_id": "1043"}
    text = "Habari {{name}} ({{phone}}), order {{order_id}}"
    assert render(text, values) == ("Habari Asha (+255712345678), order 1043", [])


@pytest.mark.parametrize("text", ["{{ name }}", "{{name  }}", "{{\tname\n}}", "{{  name}}"])
def test_whitespace_inside_the_braces_is_allowed(text):
    assert render(text, {"name": "Asha"}) == ("Asha", [])


def test_braces_around_a_placeholder_stay_plain_text():
    assert render("{{{name}}} {x} {{name}}}", {"name": "Asha"}) == ("{Asha} {x} Asha}", [])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{city|Dar es Salaam}}", "Dar es Salaam"),
        ("{{ city | Dar }}", "Dar"),
        ("{{city|a|b}}", "a|b"),
        ("{{city|x}y}}", "x}y"),
        ("{{city|a{b}c}}", "a{b}c"),
        ("{{city|}}", ""),
    ],
)
def test_a_default_fills_in_when_the_value_is_missing(text, expected):
    assert render(text, {}) == (expected, [])
    assert render(text, {"city": "Arusha"}) == ("Arusha", [])


def test_a_default_is_parsed_to_the_first_closing_pair():
    template = parse_template("{{a|x}} and {{b}}")
    assert template is not None
    assert template.placeholders == [Placeholder("a", "x"), Placeholder("b", None)]


def test_missing_values_without_default_are_reported_once_each():
    assert render("{{a}} {{b}} {{a}} {{c|z}}", {"b": "1"}) == (" 1  z", ["a"])


@pytest.mark.parametrize(
    "text",
    [
        "{{}}",
        "{{ }}",
        "{{Name}}",
        "{{first name}}",
        "{{1st}}",
        "{{name",
        "Hello {{name}} and {{",
        "{{|default}}",
        "{{" + "a" * 33 + "}}",
    ],
)
def test_a_malformed_placeholder_is_an_error(text):
    with pytest.raises(TemplateError):
        parse_template(text)


def test_an_empty_value_counts_as_missing():
    template = parse_template("Hi {{name}}, {{city|Dar}} {{tier}}")
    assert template is not None
    rendered = render_all(
        template,
        [RecipientValues("+255712345678", name="Asha", custom_fields={"city": "", "tier": ""})],
    )
    assert rendered.texts == {"+255712345678": "Hi Asha, Dar "}
    assert rendered.missing == [("+255712345678", ["tier"])]


def test_variables_come_before_contact_fields_and_non_contacts_have_only_phone():
    template = parse_template("{{name|friend}} {{order}} {{phone}} {{city}}")
    assert template is not None
    rendered = render_all(
        template,
        [
            RecipientValues(
                "+255712345678", name="Asha", custom_fields={"order": "1", "city": "A"}
            ),
            RecipientValues("+255754000111"),
        ],
        {"order": "99", "empty": ""},
    )
    assert rendered.texts == {
        "+255712345678": "Asha 99 +255712345678 A",
        "+255754000111": "friend 99 +255754000111 ",
    }
    assert rendered.missing == [("+255754000111", ["city"])]
    assert rendered.unknown == []


def test_a_key_no_recipient_has_is_unknown():
    template = parse_template("{{nobody_has}} {{name}}")
    assert template is not None
    rendered = render_all(template, [RecipientValues("+255712345678")])
    assert rendered.unknown == ["nobody_has"]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ([], "must be an object"),
        ({"Order": "1"}, "not a valid placeholder key"),
        ({"order": 1}, "must be a string"),
    ],
)
def test_bad_variables_are_refused(value, reason):
    with pytest.raises(ValueError, match=reason):
        parse_variables(value)
