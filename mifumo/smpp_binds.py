"""``MIFUMO_SMPP_BINDS``: several SMPP binds (one per network, say) from one variable.

The value is JSON, or the path of a file holding it: a list of binds, each an object with a
``name`` and the options of ``sms.carriers.smpp.SmppCarrier`` in any case (``host``, ``port``,
``system_id``, ``password``, ``window``, ``rate``, ``concatenation``, ``registered_delivery``,
...), plus ``routes``: the number prefixes (E.164 digits without "+") that bind takes. An
object of ``{"name": {options}}`` is read the same way. Each bind becomes
``MIFUMO_CARRIERS[name]``, checked like any carrier by ``manage.py check``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from sms.carriers.base import normalise_options

SMPP_BACKEND = "sms.carriers.smpp.SmppCarrier"
SETTING = "MIFUMO_SMPP_BINDS"


def smpp_binds(value: str | None) -> dict[str, dict[str, Any]]:
    """``MIFUMO_CARRIERS`` entries for the binds ``value`` describes (see the module doc)."""
    text = (value or "").strip()
    if not text:
        return {}
    source = SETTING
    if not text.startswith(("[", "{")):
        path = Path(text)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ImproperlyConfigured(
                f"{SETTING} is neither JSON nor a readable file: {exc}"
            ) from exc
        source = f"{SETTING} file {path}"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImproperlyConfigured(f"{source} is not valid JSON: {exc}") from exc
    if isinstance(data, dict):
        data = [
            {"name": name, **options} if isinstance(options, dict) else options
            for name, options in data.items()
        ]
    if not isinstance(data, list):
        raise ImproperlyConfigured(f"{source} must be a list of binds")
    binds: dict[str, dict[str, Any]] = {}
    for index, bind in enumerate(data):
        if not isinstance(bind, dict):
            raise ImproperlyConfigured(f"{source}: bind {index} must be an object of options")
        options = normalise_options(bind)
        name = options.pop("NAME", None)
        if not isinstance(name, str) or not name.strip():
            raise ImproperlyConfigured(f'{source}: bind {index} needs a "name"')
        if name in binds:
            raise ImproperlyConfigured(f"{source}: two binds are named {name!r}")
        binds[name] = {"BACKEND": SMPP_BACKEND, **options, "DEFINED_BY": SETTING}
    return binds
