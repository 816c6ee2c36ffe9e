"""The Kubernetes format library: ``format.<name>()``, ``format.named(name)`` and ``validate(s)``.

``validate`` returns ``optional.none()`` for a valid string, else ``optional.of(messages)`` with the
apimachinery validation messages verbatim.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import re
from collections.abc import Callable

from celpy import celtypes

from policyengine.cel.lib import optional
from policyengine.cel.lib.dispatch import STRING, Function, LibError, overload, table
from policyengine.cel.lib.url import parse_url

_DNS1123_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_DNS1035_LABEL = "[a-z]([-a-z0-9]*[a-z0-9])?"
_QUALIFIED_NAME = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?"
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")


def _regex_error(msg: str, fmt: str, *examples: str) -> str:
    """apimachinery's validation.RegexError, spacing included."""
    if examples:
        msg += " (e.g. " + " or ".join(f"'{e}', " for e in examples)
        return msg + f"regex used for validation is '{fmt}')"
    return msg + f" (regex used for validation is '{fmt}')"


def _matches(fmt: str, value: str) -> bool:
    return re.fullmatch(fmt, value) is not None


def _label(value: str) -> list[str]:
    errs = [] if len(value) <= 63 else ["must be no more than 63 characters"]
    if not _matches(_DNS1123_LABEL, value):
        msg = (
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
        )
        errs.append(_regex_error(msg + "start and end with an alphanumeric character", _DNS1123_LABEL,
                                 "my-name", "123-abc"))  # fmt: skip
    return errs


def _subdomain(value: str) -> list[str]:
    errs = [] if len(value) <= 253 else ["must be no more than 253 characters"]
    if not _matches(_DNS1123_SUBDOMAIN, value):
        msg = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
               "and must start and end with an alphanumeric character")  # fmt: skip
        errs.append(_regex_error(msg, _DNS1123_SUBDOMAIN, "example.com"))
    return errs


def _dns1035(value: str) -> list[str]:
    errs = [] if len(value) <= 63 else ["must be no more than 63 characters"]
    if not _matches(_DNS1035_LABEL, value):
        msg = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
               "alphabetic character, and end with an alphanumeric character")  # fmt: skip
        errs.append(_regex_error(msg, _DNS1035_LABEL, "my-name", "abc-123"))
    return errs


def _qualified_name(value: str) -> list[str]:
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
        errs: list[str] = []
    elif len(parts) == 2:
        prefix, name = parts
        errs = (
            ["prefix part must be non-empty"]
            if not prefix
            else [f"prefix part {e}" for e in _subdomain(prefix)]
        )
    else:
        msg = ("a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and "
               "end with an alphanumeric character")  # fmt: skip
        return [_regex_error(msg, _QUALIFIED_NAME, "MyName", "my.name", "123-abc")]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part must be no more than 63 characters")
    if name and not _matches(_QUALIFIED_NAME, name):
        msg = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
               "with an alphanumeric character")  # fmt: skip
        errs.append(_regex_error(msg, _QUALIFIED_NAME, "MyName", "my.name", "123-abc"))
    return errs


def _label_value(value: str) -> list[str]:
    errs = [] if len(value) <= 63 else ["must be no more than 63 characters"]
    if not _matches(_LABEL_VALUE, value):
        msg = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
               "and must start and end with an alphanumeric character")  # fmt: skip
        errs.append(_regex_error(msg, _LABEL_VALUE, "MyValue", "my_value", "12345"))
    return errs


def _prefix(check: Callable[[str], list[str]]) -> Callable[[str], list[str]]:
    """apimachinery's maskTrailingDash: a generateName prefix may end with '-'."""

    def validate(value: str) -> list[str]:
        if len(value) > 1 and value.endswith("-"):
            value = value[:-1] + "a"
        return check(value)

    return validate


def _uri(value: str) -> list[str]:
    try:
        parse_url(value)
    except LibError:
        return ["invalid URI"]
    return []


def _uuid(value: str) -> list[str]:
    return [] if _UUID.match(value) else ["invalid UUID"]


def _byte(value: str) -> list[str]:
    try:
        base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return ["invalid base64"]
    return []


def _date(value: str) -> list[str]:
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise ValueError(value)
        datetime.date.fromisoformat(value)
    except ValueError:
        return ["invalid date"]
    return []


_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def _datetime(value: str) -> list[str]:
    try:
        if not _RFC3339.fullmatch(value):
            raise ValueError(value)
        datetime.datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return ["invalid datetime"]
    return []


_FORMATS: dict[str, Callable[[str], list[str]]] = {
    "dns1123Label": _label, "dns1123Subdomain": _subdomain, "dns1035Label": _dns1035,
    "qualifiedName": _qualified_name, "dns1123LabelPrefix": _prefix(_label),
    "dns1123SubdomainPrefix": _prefix(_subdomain), "dns1035LabelPrefix": _prefix(_dns1035),
    "labelValue": _label_value, "uri": _uri, "uuid": _uuid, "byte": _byte, "date": _date,
    "datetime": _datetime,
}  # fmt: skip


class Format:
    """A CEL ``kubernetes.NamedFormat``."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Format) and self.name == other.name

    def __hash__(self) -> int:
        return hash(self.name)

    def __str__(self) -> str:
        return f"format.{self.name}()"


@overload(STRING)
def _named(name: str) -> optional.Optional:
    return optional.of(Format(str(name))) if str(name) in _FORMATS else optional.NONE


@overload(Format, STRING)
def _validate(fmt: Format, value: str) -> optional.Optional:
    errors = _FORMATS[fmt.name](str(value))
    if not errors:
        return optional.NONE
    return optional.of(celtypes.ListType(celtypes.StringType(e) for e in errors))


def _constructor(name: str) -> Function:
    def make() -> Format:
        return Format(name)

    return make


def functions() -> dict[str, list[Function]]:
    return table(
        ("format.named", _named),
        ("validate", _validate),
        *((f"format.{name}", _constructor(name)) for name in _FORMATS),
    )
