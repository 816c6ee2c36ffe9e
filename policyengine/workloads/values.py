"""Reading the small values a workload view is built from: counts, GPU quantities and storage URIs.

Everything here tolerates malformed input: a value that cannot be read is reported to the caller's
``problems`` list (with its field path) and a safe default is used, so one odd field never hides the rest
of the view.
"""

from __future__ import annotations

import json
import math
import re
import reprlib
from collections.abc import Mapping, Sequence
from fractions import Fraction
from types import MappingProxyType
from typing import Any

from policyengine.quantity import QuantityError, QuantityRangeError, parse_quantity

Problems = list[dict[str, str]]

INT64_MAX = 2**63 - 1
# Kubernetes' replica-like counts (replicas, parallelism, numNodes, ...) are int32.
INT32_MAX = 2**31 - 1
_COUNT = re.compile(r"[0-9]{1,10}")  # ASCII digits only: str.isdigit() also takes "²" and "٣"
_DIGITS = re.compile(r"[0-9]+")
# Attacker-chosen text copied into field paths and messages is cut to this many characters, so a
# 100 KB map key costs its own size once, not once per path that passes through it.
MAX_KEY_IN_PATH = 128
_KEY_SHOWN = 60


class _BoundedRepr(reprlib.Repr):
    """``repr`` for messages: bounded in length and nesting, and safe on any int (Python refuses to
    convert one of more than 4,300 digits to text)."""

    def __init__(self) -> None:
        super().__init__()
        self.maxstring = self.maxother = 80
        self.maxlevel, self.maxlist, self.maxtuple, self.maxdict = 3, 4, 4, 4

    def repr_int(self, x: int, level: int) -> str:
        return repr(x) if x.bit_length() <= 128 else "<a very large integer>"


_REPR = _BoundedRepr()


def shown(value: Any) -> str:
    """A value for a message: its repr, no longer than ~80 characters whatever the value."""
    try:
        return _REPR.repr(value)
    except (ValueError, RecursionError):
        return f"<{type(value).__name__}>"


def text(value: Any) -> str:
    """A value copied into the view as text: a string as it is (not copied), a scalar as ``str`` does,
    anything else as a bounded repr, so a nested list or a huge integer cannot make it large."""
    if isinstance(value, str):
        return value
    if (
        value is None
        or isinstance(value, bool | float)
        or (isinstance(value, int) and value.bit_length() <= 128)
    ):
        return str(value)
    return shown(value)


def clamp(n: int) -> int:
    """A count for the view, saturated at int64 (CEL's int): a total that large exceeds any limit
    anyway, and a larger one could not be bound as a CEL value."""
    return min(n, INT64_MAX)


def path_key(key: Any) -> str:
    """A map key as a field path shows it: itself, or quoted and cut when longer than MAX_KEY_IN_PATH."""
    name = text(key)
    if len(name) <= MAX_KEY_IN_PATH:
        return name
    return json.dumps(name[:_KEY_SHOWN])[:-1] + f'…" ({len(name)} characters)'


_EMPTY: Mapping[str, Any] = MappingProxyType({})


def as_dict(value: Any) -> Mapping[str, Any]:
    # Decoded JSON/YAML gives plain dicts: test for them first, and for an absent field (None), before
    # the (slower) ABC check.
    if type(value) is dict:
        return value
    if value is None:
        return _EMPTY
    return value if isinstance(value, Mapping) else _EMPTY


def as_list(value: Any) -> Sequence[Any]:
    return value if isinstance(value, list) else []


def problem(problems: Problems, path: str, message: str) -> None:
    problems.append({"path": path, "message": message})


def bounded(items: Any, limit: int, path: str, what: str, problems: Problems) -> list[Any]:
    """The first ``limit`` items of a list Kubernetes bounds; more is a problem, never read on."""
    listed = as_list(items)
    if len(listed) > limit:
        problem(
            problems,
            path,
            f"{len(listed)} {what}, more than Kubernetes allows ({limit}); read the first {limit}",
        )
    return list(listed[:limit])


def gpu_quantity(value: Any, path: str, problems: Problems) -> int:
    """A GPU count from a resource quantity (``1``, ``"2"``, ``"4"``, ``"1e1"``); 0 and a problem if it is
    not a whole non-negative number (devices cannot be split) or is beyond Kubernetes' int64 range."""
    # What manifests almost always hold (1, "4"), answered without building a Fraction: the same value
    # the exact path below gives. 18 digits are always within int64.
    kind = type(value)
    if kind is int and 0 <= value <= INT64_MAX:
        return int(value)
    if kind is str and 0 < len(value) <= 18 and value.isascii() and value.isdigit():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        problem(problems, path, f"GPU quantity {shown(value)} is not a number")
        return 0
    try:
        amount = quantity_value(value)
    except QuantityRangeError as err:
        problem(problems, path, f"GPU quantity {shown(value)} is out of range: {err}")
        return 0
    except QuantityError:
        problem(problems, path, f"GPU quantity {shown(value)} is not a Kubernetes quantity")
        return 0
    if amount < 0 or amount.denominator != 1:
        problem(problems, path, f"GPU quantity {shown(value)} is not a whole non-negative number")
        return 0
    if amount > INT64_MAX:
        problem(problems, path, f"GPU quantity {shown(value)} is out of range: more than 2^63-1")
        return 0
    return int(amount)


def quantity_value(value: int | float | str) -> Fraction:
    """The exact value of a quantity written as a JSON number or a string; raises QuantityError."""
    if isinstance(value, str):
        return parse_quantity(value.strip())
    if isinstance(value, float) and not math.isfinite(value):
        raise QuantityError(f"{value} is not a finite number")
    if isinstance(value, int) and value.bit_length() > 64:
        raise QuantityRangeError("more than 2^63-1")
    return Fraction(value)


def count(value: Any, path: str, default: int, problems: Problems) -> int:
    """A replica-like count; ``default`` when absent, ``default`` and a problem when malformed or beyond
    Kubernetes' int32 range."""
    if value is None:
        return default
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value if value >= 0 else None
    elif isinstance(value, str) and _COUNT.fullmatch(value.strip()):
        number = int(value.strip())
    elif isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        number = INT32_MAX + 1  # more than ten digits: out of range, and never given to int()
    if number is None:
        problem(problems, path, f"count {shown(value)} is not a non-negative integer")
    elif number > INT32_MAX:
        problem(problems, path, f"count {shown(value)} is out of range: more than {INT32_MAX}")
    else:
        return number
    return default


def opt_count(value: Any, path: str, problems: Problems) -> int | None:
    """Like ``count`` but None when absent or malformed, for counts whose absence changes the rule."""
    if value is None:
        return None
    before = len(problems)
    result = count(value, path, -1, problems)
    return None if len(problems) > before or result < 0 else result


# Storage schemes whose URIs name data in a place with a region. oci+fetch/oci+native are KServe's.
_SCHEMES = ("s3", "s3a", "gs", "az", "abfs", "abfss", "wasb", "wasbs", "hf", "oci", "oci+fetch", "oci+native")
# HTTPS endpoints of object stores: Azure Blob/ADLS, S3 and GCS.
_HTTPS_HOSTS = re.compile(
    r"^[a-z0-9.-]+\.(?:blob|dfs)\.core\.windows\.net$"
    r"|^(?:[a-z0-9.-]+\.)?s3(?:[.-][a-z0-9-]+)*\.amazonaws\.com$"
    r"|^storage\.googleapis\.com$",
)
_URI_IN_TEXT = re.compile(
    r"(?<![A-Za-z0-9+.-])(?:"
    + "|".join(re.escape(s) for s in sorted(_SCHEMES, key=len, reverse=True))
    + r"|https)://[^\s\"'`,;()<>\[\]{}]+"
)


def is_storage_uri(text: str) -> bool:
    """True for a URI of a known storage scheme, or an https URL of an object-store endpoint."""
    scheme, sep, rest = text.partition("://")
    if not sep or not rest:
        return False
    scheme = scheme.lower()
    if scheme in _SCHEMES:
        return True
    if scheme == "https":
        host = rest.split("/", 1)[0].split("@")[-1].split(":")[0].lower()
        return bool(_HTTPS_HOSTS.match(host))
    return False


_SCHEME_SET = frozenset(_SCHEMES)
_DELIMITER = re.compile(r"[\s\"'`,;()<>\[\]{}]")


def storage_uris_in(text: str) -> list[str]:
    """Storage URIs found inside free text (``--data=s3://b/x``, a shell line), in order of appearance."""
    # Fast paths for what env values and args mostly are, with the same answer as the scan below: no
    # URI at all, or exactly one storage URI and nothing else.
    if "://" not in text:
        return []
    scheme, _, rest = text.partition("://")
    if scheme in _SCHEME_SET and rest and _DELIMITER.search(text) is None:
        return [text]
    return [m.group(0) for m in _URI_IN_TEXT.finditer(text) if is_storage_uri(m.group(0))]


_SHA256 = re.compile(r"@sha256:([0-9a-f]{64})$")  # OCI digests are lowercase hex


def sha256_of(reference: str) -> str:
    """The lowercase hex of a trailing ``@sha256:<64 hex>`` digest, or "" when the reference has none."""
    match = _SHA256.search(reference)
    return match.group(1).lower() if match else ""


def split_csv(text: Any) -> list[str]:
    if not isinstance(text, str):
        return []
    return [part.strip() for part in text.split(",") if part.strip()]
