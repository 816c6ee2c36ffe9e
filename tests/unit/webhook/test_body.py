"""Body limits and hostile JSON are refused with codes, never crashes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from webhook.body import MAX_DEPTH, depth_of, parse_json, read_limited
from webhook.errors import BodyTimeout, BodyTooLarge, InvalidJSON, NestingTooDeep


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for p in parts:
        yield p


def test_declared_length_over_the_limit_is_refused_before_reading() -> None:
    async def never() -> AsyncIterator[bytes]:
        raise AssertionError("the body must not be read")
        yield b""

    with pytest.raises(BodyTooLarge, match="2000 bytes"):
        asyncio.run(read_limited(never(), content_length="2000", limit=1000))


def test_a_stream_over_the_limit_is_refused_while_streaming() -> None:
    with pytest.raises(BodyTooLarge) as info:
        asyncio.run(read_limited(_chunks(b"x" * 600, b"x" * 600), content_length=None, limit=1000))
    assert info.value.status == 413


def test_a_body_within_the_limit_is_read_whole() -> None:
    assert asyncio.run(read_limited(_chunks(b"ab", b"cd"), content_length="4", limit=4)) == b"abcd"


@pytest.mark.parametrize("body", [b"{", b"\xff\xfe", b"nul", b'{"a": 1,}', b'{"n": 9223372036854775808}'])
def test_invalid_json_is_invalid_json(body: bytes) -> None:
    with pytest.raises(InvalidJSON):
        parse_json(body)


def test_pathological_nesting_is_refused_not_a_recursion_crash() -> None:
    with pytest.raises(NestingTooDeep):
        parse_json(b"[" * 200_000 + b"]" * 200_000)
    with pytest.raises(NestingTooDeep):
        parse_json(b'{"a":' * (MAX_DEPTH + 1) + b"1" + b"}" * (MAX_DEPTH + 1))


def test_nesting_within_the_limit_parses() -> None:
    assert depth_of(parse_json(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH), MAX_DEPTH) == MAX_DEPTH
    assert parse_json(b'{"a": [1, {"b": 2}]}') == {"a": [1, {"b": 2}]}


@pytest.mark.parametrize(
    "body",
    [
        b'{"n": NaN}',
        b'{"n": Infinity}',
        b'{"n": -Infinity}',
        b'{"n": 1e400}',
        b'{"s": "\\ud800"}',
        b'{"s": "a\\udc00b"}',
        b'{"\\udfff": 1}',
        b'[["x", {"k": ["\\uDBFF"]}]]',
    ],
    ids=["nan", "inf", "-inf", "overflow", "lone-high", "lone-low", "key", "nested"],
)
def test_what_python_accepts_but_json_and_kubernetes_do_not_is_invalid_json(body: bytes) -> None:
    # NaN/Infinity are not JSON, 1e400 is no float64, a lone surrogate is no Unicode (no entry holds it).
    with pytest.raises(InvalidJSON):
        parse_json(body)


def test_surrogate_pairs_and_escaped_backslashes_still_parse() -> None:
    assert parse_json(b'{"s": "\\ud83d\\ude00"}') == {"s": "\U0001f600"}
    assert parse_json(b'{"s": "\\\\ud800"}') == {"s": "\\ud800"}
    assert parse_json(b'{"f": 1.5e300}') == {"f": 1.5e300}


def test_a_body_that_stops_arriving_is_a_timeout_not_a_hang() -> None:
    async def stalled() -> AsyncIterator[bytes]:
        yield b'{"a":'
        await asyncio.sleep(3600)

    with pytest.raises(BodyTimeout) as info:
        asyncio.run(read_limited(stalled(), content_length="1000", limit=10_000, timeout=0.05))
    assert info.value.status == 408
