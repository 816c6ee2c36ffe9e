"""Conversion between plain JSON-like Python values and cel-python values, done once per request."""

from __future__ import annotations

import datetime
from typing import Any

from celpy import celtypes
from celpy.adapter import json_to_cel

from policyengine.cel.budget import current
from policyengine.cel.lib.optional import Optional


def to_cel(value: Any) -> Any:
    """A plain JSON-like value (or an optional of one) as cel-python values."""
    if isinstance(value, Optional):
        return Optional(True, json_to_cel(value.value)) if value.present else value
    return json_to_cel(value)


def from_cel(value: Any) -> Any:
    """cel-python values back to plain Python (bool before int: BoolType subclasses int).

    Library values (quantities, IPs, ...) come back as their string form; durations as seconds and
    timestamps as RFC 3339 strings, since neither is JSON.
    """
    if value is None:
        return None
    if isinstance(value, celtypes.BoolType | bool):
        return bool(value)
    if isinstance(value, celtypes.IntType | celtypes.UintType):
        return int(value)
    if isinstance(value, celtypes.DoubleType):
        return float(value)
    if isinstance(value, celtypes.StringType):
        return str(value)
    if isinstance(value, celtypes.BytesType):
        return bytes(value)
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, datetime.datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, dict):
        return {from_cel(k): from_cel(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        meter = current()
        if meter is not None:
            meter.charge(len(value))
        return [from_cel(v) for v in value]
    if isinstance(value, int | float | str):
        return value
    return str(value)
