"""Entries: the versioned record, and canonical bytes identical to the rfc8785 reference."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.entry import ENTRY_VERSION, canonical, index_fields, make_entry
from audit.errors import EntryError

text_st = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
json_st = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | text_st,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text_st, children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(json_st)
def test_canonical_equals_rfc8785(value: Any) -> None:
    assert canonical(value) == rfc8785.dumps(value)


def test_keys_outside_the_bmp_sort_by_utf16_code_units() -> None:
    value = {"\U0001f600": 1, "\ufb01": 2, "a": 3}
    assert canonical(value) == rfc8785.dumps(value)
    assert canonical(value).index("\U0001f600".encode()) < canonical(value).index("\ufb01".encode())


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ({"x": 1.5}, "entry_float"),
        ({"x": [2**53]}, "entry_integer"),
        ({"x": "\ud800"}, "entry_unicode"),
        ({1: "x"}, "entry_key"),
        ({"x": {1, 2}}, "entry_type"),
    ],
)
def test_values_that_cannot_be_canonical_are_refused(value: Any, code: str) -> None:
    with pytest.raises(EntryError) as caught:
        canonical(value)
    assert caught.value.code == code


def _entry(**over: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "time": datetime(2026, 11, 27, 13, 0, 0, 5, tzinfo=timezone(timedelta(hours=1))),
        "source": "admission",
        "uid": "u-1",
        "operation": "CREATE",
        "resource": {"apiVersion": "v1", "kind": "Pod", "namespace": "ml", "name": "p"},
        "verdict": "denied",
        "user": "alice",
        "groups": ("dev", "system:authenticated"),
        "results": [{"policy": "p1", "action": "deny", "outcome": "fail", "message": "no", "exception": ""}],
    }
    values.update(over)
    return make_entry(**values)


def test_make_entry_builds_a_versioned_record_in_utc() -> None:
    entry = _entry(exceptions=["ex-1"], dry_run=True, commit="0123abc")
    assert entry["version"] == ENTRY_VERSION
    assert entry["time"] == "2026-11-27T12:00:00.000005Z"
    assert entry["user"] == {"username": "alice", "groups": ["dev", "system:authenticated"]}
    assert entry["results"] == [{"policy": "p1", "action": "deny", "outcome": "fail", "message": "no"}]
    assert entry["dryRun"] is True and entry["commit"] == "0123abc" and entry["exceptions"] == ["ex-1"]
    assert json.loads(canonical(entry)) == entry
    assert "commit" not in _entry()


@pytest.mark.parametrize(
    ("over", "code"),
    [
        ({"source": "cron"}, "entry_source"),
        ({"verdict": "maybe"}, "entry_verdict"),
        ({"time": datetime(2026, 1, 1)}, "entry_naive_time"),
    ],
)
def test_make_entry_refuses_bad_values(over: dict[str, Any], code: str) -> None:
    with pytest.raises(EntryError) as caught:
        _entry(**over)
    assert caught.value.code == code


def test_index_fields_come_from_the_entry() -> None:
    fields = index_fields(_entry(time=datetime(2026, 1, 2, tzinfo=UTC)))
    assert (fields.time, fields.verdict, fields.namespace, fields.kind, fields.user, fields.source) == (
        "2026-01-02T00:00:00.000000Z",
        "denied",
        "ml",
        "Pod",
        "alice",
        "admission",
    )
    assert fields.policies == ("p1",)


def test_git_commit_inside_and_outside_a_repository(tmp_path: Path) -> None:
    import shutil
    import subprocess

    from audit.git import git_commit

    assert git_commit(tmp_path) is None
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@e",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@e",
    }
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(
        ["git", "-C", str(tmp_path), "commit", "-q", "--allow-empty", "-m", "x"],
        check=True,
        env={**env, "HOME": str(tmp_path)},
    )
    commit = git_commit(tmp_path)
    assert commit is not None and len(commit) == 40
