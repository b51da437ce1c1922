"""The one rule for names that users type: case-insensitive, surrounding spaces ignored, ``_`` = ``-``."""

from __future__ import annotations


def normalize(name: object) -> str:
    """``name`` in canonical form: ``" PGD_AT "`` → ``"pgd-at"``; non-strings become their ``str``.

    A ``prefix:Rest`` name (``torchattacks:PGD``) keeps ``Rest`` as typed, since it names a class."""
    if not isinstance(name, str):
        return str(name)
    text = name.strip()
    head, sep, rest = text.partition(":")
    if sep:
        return head.strip().lower().replace("_", "-") + ":" + rest.strip()
    return text.lower().replace("_", "-")
