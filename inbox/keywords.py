"""Keywords that opt a phone out, back in, or ask for help (English and Swahili), matched
on the whole text after the routing keyword, and the default automatic replies."""

from __future__ import annotations

import re

from inbox.models import Action

OPT_OUT_WORDS = ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "SITISHA", "ACHA")
OPT_IN_WORDS = ("START", "UNSTOP", "YES", "ANZA")
HELP_WORDS = ("HELP", "INFO", "MSAADA")

STANDARD: dict[str, str] = {
    **dict.fromkeys(OPT_OUT_WORDS, Action.OPT_OUT.value),
    **dict.fromkeys(OPT_IN_WORDS, Action.OPT_IN.value),
    **dict.fromkeys(HELP_WORDS, Action.HELP.value),
}

DEFAULT_REPLIES: dict[str, str] = {
    Action.OPT_OUT.value: (
        "You will get no more messages from us. Reply START to subscribe again. / "
        "Hutapokea ujumbe zaidi kutoka kwetu. Jibu ANZA kujiunga tena."
    ),
    Action.OPT_IN.value: (
        "You will get our messages again. Reply STOP to unsubscribe. / "
        "Utapokea ujumbe wetu tena. Jibu SITISHA kujiondoa."
    ),
    Action.HELP.value: (
        "Reply STOP to unsubscribe, START to subscribe again. / "
        "Jibu SITISHA kujiondoa, ANZA kujiunga tena."
    ),
}

KEYWORD_FORMAT = re.compile(r"^[A-Z0-9]{1,20}$")
_TRAILING = re.compile(r"[\s.!?,;:'\"()\-]+$")
_LEADING = re.compile(r"^[\s\"'(]+")


def normalise_keyword(text: str) -> str:
    """The text as a keyword would be compared: trimmed, upper case, without the
    punctuation people put around a single word ("Stop!", "stop.")."""
    return _LEADING.sub("", _TRAILING.sub("", text.strip())).upper()


def first_word(text: str) -> tuple[str, str]:
    """The routing keyword candidate and the rest of the text after it."""
    parts = text.strip().split(None, 1)
    if not parts:
        return "", ""
    return normalise_keyword(parts[0]), parts[1] if len(parts) > 1 else ""


def match_action(text: str, extra: dict[str, str] | None = None) -> str | None:
    """The action the whole text asks for, or None: a sentence that merely contains
    "stop" asks for nothing."""
    word = normalise_keyword(text)
    if not word:
        return None
    if extra and word in extra:
        return extra[word]
    return STANDARD.get(word)
