"""SMS text analysis: which alphabet a text needs, how many parts it takes, and its bytes.

A text is sent in the GSM 03.38 default alphabet (7-bit) when every character is in the basic
table or its extension table, else in UCS-2 (UTF-16 in practice, so emoji work). Extension
characters cost two septets (an escape and the character); characters outside the Basic
Multilingual Plane cost two UTF-16 code units. A single SMS carries 160 septets or 70 units; a
concatenated one loses room to its user data header and carries 153 or 67 per part.

Parts are cut greedily and never inside an escape pair or a surrogate pair, so a part may end
one unit short of its limit; the segment count is therefore the number of parts the split
actually produces, not just ``ceil(units / per_part)``. Billing and sending both rely on
``analyze(text).segments == len(split_parts(text))``.

Pure functions, no Django imports.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import pairwise

GSM7 = "GSM-7"
UCS2 = "UCS-2"

GSM7_SINGLE = 160
GSM7_PART = 153
UCS2_SINGLE = 70
UCS2_PART = 67

_ESCAPE = 0x1B

# 3GPP TS 23.038 default alphabet, indexed by septet. Position 0x1B is the escape to the
# extension table, not a character: it holds a placeholder that is removed below.
_BASIC_TABLE = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)

_EXTENSION_TABLE = {
    "\x0c": 0x0A,  # form feed (page break)
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}

_BASIC_ENCODE = {char: code for code, char in enumerate(_BASIC_TABLE) if code != _ESCAPE}
_BASIC_DECODE = {code: char for char, code in _BASIC_ENCODE.items()}
_EXTENSION_DECODE = {code: char for char, code in _EXTENSION_TABLE.items()}

_GSM_CHARS = frozenset(_BASIC_ENCODE) | frozenset(_EXTENSION_TABLE)

assert len(_BASIC_TABLE) == 128, "the GSM basic table must have 128 positions"


@dataclass(frozen=True)
class TextInfo:
    encoding: str
    length: int  # characters (code points)
    units: int  # septets for GSM-7 (extension chars count 2), UTF-16 code units for UCS-2
    segments: int
    per_segment: int  # 160 or 153 for GSM-7, 70 or 67 for UCS-2


def is_gsm7(text: str) -> bool:
    """True when every character has a GSM 03.38 encoding (basic or extension table)."""
    return _GSM_CHARS.issuperset(text)


def _gsm7_cost(char: str) -> int:
    return 2 if char in _EXTENSION_TABLE else 1


def _utf16_cost(char: str) -> int:
    return 2 if ord(char) > 0xFFFF else 1


def _profile(text: str) -> tuple[str, Callable[[str], int], int, int]:
    """The encoding of a text, its per-character cost, and its single/multipart limits."""
    if is_gsm7(text):
        return GSM7, _gsm7_cost, GSM7_SINGLE, GSM7_PART
    return UCS2, _utf16_cost, UCS2_SINGLE, UCS2_PART


def _cut_points(text: str, cost: Callable[[str], int], limit: int) -> Iterator[int]:
    """Indexes where each part after the first begins, packing at most ``limit`` units per
    part and keeping every character whole."""
    used = 0
    for index, char in enumerate(text):
        size = cost(char)
        if used + size > limit:
            yield index
            used = 0
        used += size


def _units(text: str, encoding: str) -> int:
    """``sum(cost(char) for char in text)``, counted in C: a personalised send analyses
    every recipient's text."""
    if encoding == GSM7:
        return len(text) + sum(text.count(char) for char in _EXTENSION_TABLE)
    return len(text.encode("utf-16-le", errors="surrogatepass")) // 2


def analyze(text: str) -> TextInfo:
    """Encoding, size and segment count of ``text`` as it would be sent."""
    encoding, cost, single, part = _profile(text)
    units = _units(text, encoding)
    if units <= single:
        return TextInfo(encoding, len(text), units, 1, single)
    segments = 1 + sum(1 for _ in _cut_points(text, cost, part))
    return TextInfo(encoding, len(text), units, segments, part)


def split_parts(text: str) -> list[str]:
    """The text of each SMS part; one element (possibly empty) for a single-part message."""
    _, cost, single, part = _profile(text)
    if sum(cost(char) for char in text) <= single:
        return [text]
    starts = [0, *_cut_points(text, cost, part), len(text)]
    return [text[begin:end] for begin, end in pairwise(starts)]


def encode_gsm7(text: str) -> bytes:
    """Unpacked GSM 7-bit: one septet per octet, 0x1B before each extension character.

    This is what SMPP ``data_coding`` 0x00 carries; the SMSC packs septets for the air.
    Raises ``ValueError`` for a character outside the GSM alphabet.
    """
    out = bytearray()
    for char in text:
        code = _BASIC_ENCODE.get(char)
        if code is not None:
            out.append(code)
            continue
        extension = _EXTENSION_TABLE.get(char)
        if extension is None:
            raise ValueError(f"character {char!r} is not in the GSM 03.38 alphabet")
        out += bytes((_ESCAPE, extension))
    return bytes(out)


def decode_gsm7(data: bytes) -> str:
    """Inverse of ``encode_gsm7``.

    Following TS 23.038, an escape followed by a code the extension table does not define
    shows the basic-table character, and a dangling escape at the end reads as a space.
    Raises ``ValueError`` for an octet above 0x7F, which unpacked septets never contain.
    """
    chars: list[str] = []
    escaped = False
    for octet in data:
        if octet > 0x7F:
            raise ValueError(f"octet 0x{octet:02X} is not an unpacked GSM septet")
        if escaped:
            chars.append(_EXTENSION_DECODE.get(octet) or _BASIC_DECODE.get(octet, " "))
            escaped = False
        elif octet == _ESCAPE:
            escaped = True
        else:
            chars.append(_BASIC_DECODE[octet])
    if escaped:
        chars.append(" ")
    return "".join(chars)


def encode_ucs2(text: str) -> bytes:
    """UTF-16-BE, the de-facto meaning of SMPP ``data_coding`` 0x08.

    A lone surrogate (possible in text decoded from JSON) is passed through rather than
    failing the whole message; it counts as one unit in ``analyze`` as well.
    """
    return text.encode("utf-16-be", errors="surrogatepass")


def decode_ucs2(data: bytes) -> str:
    """Inverse of ``encode_ucs2``."""
    return data.decode("utf-16-be", errors="surrogatepass")
