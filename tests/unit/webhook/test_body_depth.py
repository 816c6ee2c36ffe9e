"""The nesting depth of a review read from its text: exactly the parsed value's depth whatever its
strings hold (brackets, quotes, escapes, other scripts), so a review of a usual size is not walked value by
value; deeper, larger or non-UTF-8 texts are walked as before, and hostile nesting is still refused."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

import webhook.body
from webhook.body import MAX_DEPTH, TEXT_DEPTH, TEXT_DEPTH_BYTES, depth_of, parse_json, text_depth
from webhook.errors import NestingTooDeep

TRICKY = [
    b'{"a": "]]]]\\"[[[", "b": [[[{}]]]}',
    b"[]",
    b'"x"',
    b"1",
    b'{"k\\\\": ["\\\\"]}',
    '{"é": ["[ü", "}{"]}'.encode(),
    b'{"a\\\\\\"[": [{"b": "\\\\"}, []]}',
    b'["[", "]"]',
    b'[["[" ,"]]]]"]]',
    b'{"": "", "x": {"": [""]}}',
    b'[\n  {\n    "a": "\\u005b"\n  }\n]',
]


@pytest.mark.parametrize("body", TRICKY)
def test_the_text_depth_is_the_parsed_depth(body: bytes) -> None:
    assert text_depth(body, 50) == depth_of(json.loads(body), 1000)


def _value(rnd: random.Random, depth: int) -> Any:
    roll = rnd.random()
    if depth > 8 or roll < 0.3:
        return rnd.choice(["[", "]", "{", "}", '"', "\\", "x", "é", "[]{}", '\\"[', "", '""']) * rnd.randint(
            0, 3
        )
    if roll < 0.65:
        return [_value(rnd, depth + 1) for _ in range(rnd.randint(0, 3))]
    return {rnd.choice(["a", "[", "]}", '"', "\\", ""]) + str(i): _value(rnd, depth + 1) for i in range(3)}


def test_the_text_depth_is_the_parsed_depth_on_random_documents() -> None:
    rnd = random.Random(16)
    for _ in range(3000):
        value = _value(rnd, 0)
        body = json.dumps(value, ensure_ascii=rnd.random() < 0.5, indent=rnd.choice([None, 1])).encode()
        assert text_depth(body, 50) == depth_of(value, 1000), body


def test_deeper_than_asked_or_not_utf8_is_left_to_the_walk() -> None:
    assert text_depth(b"[" * (TEXT_DEPTH + 1) + b"]" * (TEXT_DEPTH + 1), TEXT_DEPTH) is None
    assert text_depth(b"[" * TEXT_DEPTH + b"]" * TEXT_DEPTH, TEXT_DEPTH) == TEXT_DEPTH
    assert text_depth('[["[x"]]'.encode("utf-16"), TEXT_DEPTH) is None


def _review(containers: int) -> bytes:
    env = [{"name": f"V{i}", "value": f's3://bucket/[shard-{i}]/\\"x\\"'} for i in range(20)]
    spec = {"containers": [{"name": f"c{i}", "env": env} for i in range(containers)]}
    request = {"uid": "u", "object": {"kind": "Pod", "spec": spec}}
    return json.dumps({"apiVersion": "admission.k8s.io/v1", "request": request}).encode()


def test_a_usual_review_is_not_walked_value_by_value(monkeypatch: pytest.MonkeyPatch) -> None:
    walked: list[int] = []
    real = webhook.body.depth_of
    monkeypatch.setattr(webhook.body, "depth_of", lambda data, stop: walked.append(1) or real(data, stop))
    body = _review(containers=6)
    assert body.count(b"{") + body.count(b"[") > MAX_DEPTH  # more brackets than the limit: checked
    assert parse_json(body)["request"]["uid"] == "u"
    assert walked == []


def test_hostile_nesting_is_refused_through_either_path(monkeypatch: pytest.MonkeyPatch) -> None:
    deep = b'{"a":' * (MAX_DEPTH + 1) + b"1" + b"}" * (MAX_DEPTH + 1)
    with pytest.raises(NestingTooDeep):
        parse_json(deep)  # small: the text is read to TEXT_DEPTH, then the values walked
    padded = b'{"pad": "' + b"[" * TEXT_DEPTH_BYTES + b'", "v": ' + deep + b"}"
    with pytest.raises(NestingTooDeep):
        parse_json(padded)  # over TEXT_DEPTH_BYTES: walked
    fake = b'{"s": "' + b"[" * (MAX_DEPTH * 3) + b'", "t": ["' + b"{" * MAX_DEPTH + b'"]}'
    assert parse_json(fake)["t"] == ["{" * MAX_DEPTH]  # brackets in strings are no nesting
