"""Reading a request body safely: a size limit enforced while streaming, and JSON with a nesting limit.

kube-apiserver caps request bodies at 3 MiB, so that is the default here too. The limit is checked
against ``Content-Length`` first (refused before a byte is read) and again while the body streams in, so a
chunked or lying client cannot make the server buffer more than the limit.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import AsyncIterator
from typing import Any

from webhook.errors import BodyTimeout, BodyTooLarge, InvalidJSON, NestingTooDeep

DEFAULT_MAX_BODY = 3 * 1024 * 1024
# kube-apiserver waits at most 30 s (timeoutSeconds' maximum) for a webhook: a body still arriving after
# that has no one left to answer.
DEFAULT_BODY_TIMEOUT = 30.0
# Kubernetes objects are shallow (a pod spec nests ~15 deep); anything far deeper is hostile.
MAX_DEPTH = 100
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
# Reviews up to this size, nesting up to this deep, have their depth read from their text: each level
# costs a pass over the text's brackets, so both are bounded (deeper or larger ones walk the values).
TEXT_DEPTH_BYTES = 256 * 1024
TEXT_DEPTH = 32
# What ``text_depth`` reads of a text: its quotes and brackets.
_NOT_MARKS = bytes(b for b in range(256) if b not in b'"[]{}')
_SQUARE = bytes.maketrans(b"{}", b"[]")


async def read_limited(
    chunks: AsyncIterator[bytes],
    *,
    content_length: str | None,
    limit: int,
    timeout: float | None = None,
) -> bytes:
    """The whole body, or BodyTooLarge as soon as it is known to be over ``limit`` bytes.

    ``timeout`` bounds the whole read (BodyTimeout): a client that sends its body slowly, or stops half
    way, cannot hold a request open for longer than kube-apiserver would ever wait for the answer.
    """
    try:
        async with asyncio.timeout(timeout):
            return await _read(chunks, content_length=content_length, limit=limit)
    except TimeoutError:
        raise BodyTimeout(f"the request body did not arrive within {timeout:g}s") from None


async def _read(chunks: AsyncIterator[bytes], *, content_length: str | None, limit: int) -> bytes:
    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError:
            declared = -1
        if declared > limit:
            raise BodyTooLarge(f"request body of {declared} bytes is over the limit of {limit} bytes")
    buf = bytearray()
    async for chunk in chunks:
        buf.extend(chunk)
        if len(buf) > limit:
            raise BodyTooLarge(f"request body is over the limit of {limit} bytes")
    return bytes(buf)


def parse_json(body: bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """JSON -> Python values. Invalid JSON, invalid UTF-8, integers outside int64 and nesting deeper
    than ``max_depth`` are InvalidJSON/NestingTooDeep, never a crash: the C decoder reports runaway nesting as RecursionError,
    and the depth of what it accepted is checked without recursion.

    Python's decoder is laxer than JSON (RFC 8259) and kube-apiserver: it takes ``NaN`` and ``Infinity``,
    turns ``1e400`` into infinity and lets ``\\ud800`` escapes make strings that are not Unicode (which
    no audit entry can hold). All of these are InvalidJSON here, so they are refused as the bad input
    they are instead of failing later as a 500."""
    try:
        data = json.loads(body, parse_int=_int64, parse_float=_finite, parse_constant=_no_constant)
    except RecursionError:
        raise NestingTooDeep(f"JSON nests deeper than {max_depth} levels") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise InvalidJSON(f"body is not valid JSON: {_short(err)}") from None
    # Only bodies with more brackets than the limit can nest past it, so most skip the exact count. A
    # review of a usual size and depth has it read from its text (C speed); the rest walk the values.
    if _bracket_bound(body) > max_depth:
        depth = text_depth(body, TEXT_DEPTH) if len(body) <= TEXT_DEPTH_BYTES else None
        if (depth if depth is not None else depth_of(data, max_depth)) > max_depth:
            raise NestingTooDeep(f"JSON nests deeper than {max_depth} levels")
    # Only a \uD800-\uDFFF escape can make a surrogate (raw ones are invalid UTF-8 and fail above).
    if _SURROGATE_ESCAPE.search(body) and _has_lone_surrogate(data):
        raise InvalidJSON("body is not valid JSON: a string holds an unpaired UTF-16 surrogate")
    return data


def _int64(text: str) -> int:
    """Kubernetes JSON integers are int64; kube-apiserver never sends larger ones, and CEL cannot hold them."""
    value = int(text)
    if not -(2**63) <= value < 2**63:
        raise ValueError(f"integer {text[:30]} is outside the int64 range")
    return value


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:30]} is outside the float64 range")
    return value


def _no_constant(text: str) -> Any:
    raise ValueError(f"{text} is not a JSON value")


def _has_lone_surrogate(data: Any) -> bool:
    """Whether any string (key or value) holds a surrogate code point, checked without recursion."""
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                return True
        elif isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return False


def _bracket_bound(body: bytes) -> int:
    """An upper bound on nesting depth: no document nests deeper than it has opening brackets."""
    return body.count(b"[") + body.count(b"{")


def text_depth(body: bytes, within: int) -> int | None:
    """The nesting depth of a valid UTF-8 JSON text when it is at most ``within``, read from its bytes;
    None when it is deeper or the text is in one of the other encodings ``json.loads`` accepts.

    In valid JSON, backslashes are only inside strings, each escaping the next character; once the
    escapes are gone every quote delimits a string, so the brackets outside the quoted stretches are
    the structure. Most strings hold no bracket: with only quotes and brackets kept, such a string is
    ``""``, and when removing those pairs leaves no quote, what is left is the structure (a string
    holding a bracket always leaves its opening quote); else the quoted stretches are cut out. Each
    round then removes the innermost pairs of brackets: the rounds are the depth."""
    if json.detect_encoding(body) != "utf-8":
        return None
    if b"\\" in body:
        body = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    marks = body.translate(_SQUARE, _NOT_MARKS)  # quotes and brackets, objects' as arrays' (same depth)
    brackets = marks.replace(b'""', b"")
    if b'"' in brackets:
        brackets = b"".join(marks.split(b'"')[::2])
    depth = 0
    while brackets:
        if depth == within:
            return None
        brackets = brackets.replace(b"[]", b"")
        depth += 1
    return depth


def depth_of(data: Any, stop_after: int) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0), iteratively; stops early past ``stop_after``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        depth += 1
        if depth > deepest:
            deepest = depth
            if deepest > stop_after:
                return deepest
        stack.extend((child, depth) for child in children if isinstance(child, dict | list))
    return deepest


def _short(err: Exception) -> str:
    text = str(err)
    return text if len(text) <= 200 else text[:199] + "…"
