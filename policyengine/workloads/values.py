"""Reading the small values a workload view is built from: counts, GPU quantities and storage URIs.

Everything here tolerates malformed input: a value that cannot be read is reported to the caller's
``problems`` list (with its field path) and a safe default is used, so one odd field never hides the rest
of the view.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from fractions import Fraction
from types import MappingProxyType
from typing import Any

Problems = list[dict[str, str]]

# Kubernetes resource.Quantity: a signed decimal, an optional exponent, an optional suffix.
_QUANTITY = re.compile(
    r"^(?P<sign>[+-]?)(?P<num>\d+(?:\.\d*)?|\.\d+)(?:[eE](?P<exp>[+-]?\d+))?"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$"
)
_SUFFIX: dict[str, Fraction] = {
    "": Fraction(1),
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
    "Ki": Fraction(2**10),
    "Mi": Fraction(2**20),
    "Gi": Fraction(2**30),
    "Ti": Fraction(2**40),
    "Pi": Fraction(2**50),
    "Ei": Fraction(2**60),
}


_EMPTY: Mapping[str, Any] = MappingProxyType({})


def as_dict(value: Any) -> Mapping[str, Any]:
    # Decoded JSON/YAML gives plain dicts: test for them first, before the (slower) ABC check.
    if type(value) is dict or isinstance(value, Mapping):
        return value
    return _EMPTY


def as_list(value: Any) -> Sequence[Any]:
    return value if isinstance(value, list) else []


def problem(problems: Problems, path: str, message: str) -> None:
    problems.append({"path": path, "message": message})


def gpu_quantity(value: Any, path: str, problems: Problems) -> int:
    """A GPU count from a resource quantity (``1``, ``"2"``, ``"4"``, ``"1e1"``); 0 and a problem if it is
    not a whole non-negative number, because devices cannot be split."""
    if isinstance(value, bool):
        problem(problems, path, f"GPU quantity {value!r} is not a number")
        return 0
    if isinstance(value, int | float):
        amount = Fraction(value)
    elif isinstance(value, str):
        match = _QUANTITY.match(value.strip())
        if match is None:
            problem(problems, path, f"GPU quantity {value!r} is not a Kubernetes quantity")
            return 0
        amount = Fraction(match["num"]) * _SUFFIX[match["suffix"] or ""]
        if match["exp"]:
            amount *= Fraction(10) ** int(match["exp"])
        if match["sign"] == "-":
            amount = -amount
    else:
        problem(problems, path, f"GPU quantity {value!r} is not a number")
        return 0
    if amount < 0 or amount.denominator != 1:
        problem(problems, path, f"GPU quantity {value!r} is not a whole non-negative number")
        return 0
    return int(amount)


def count(value: Any, path: str, default: int, problems: Problems) -> int:
    """A replica-like count; ``default`` when absent, ``default`` and a problem when malformed."""
    if value is None:
        return default
    if isinstance(value, int) and not isinstance(value, bool):
        if value >= 0:
            return value
    elif isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    problem(problems, path, f"count {value!r} is not a non-negative integer")
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
