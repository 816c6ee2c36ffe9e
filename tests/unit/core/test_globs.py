"""--exclude patterns follow gitignore's rules (less negation), relative to the walk root."""

from __future__ import annotations

import pytest

from policyengine.globs import MAX_PATTERN, Excludes, PatternError, compile_pattern


@pytest.mark.parametrize(
    ("pattern", "path", "is_dir", "expected"),
    [
        ("*.json", "schemas/a.json", False, True),  # no slash: any depth
        ("*.json", "a.json", False, True),
        ("*.json", "a.yaml", False, False),
        ("build/", "x/build", True, True),  # trailing slash: directories only
        ("build/", "x/build", False, False),
        ("docs/*.yaml", "docs/a.yaml", False, True),  # a slash anchors at the root
        ("docs/*.yaml", "x/docs/a.yaml", False, False),
        ("docs/*.yaml", "docs/sub/a.yaml", False, False),  # * never crosses a slash
        ("/k8s", "k8s", True, True),
        ("/k8s", "a/k8s", True, False),
        ("**/fixtures/**", "tests/unit/fixtures/a.yaml", False, True),
        ("**/fixtures/**", "fixtures/a.yaml", False, True),
        ("**/fixtures/**", "fixtures", True, False),
        ("a/**/b", "a/b", True, True),
        ("a/**/b", "a/x/y/b", True, True),
        ("file?.y[a-z]ml", "file1.yaml", False, True),
        ("file?.y[!a]ml", "file1.yaml", False, False),
        ("\\*.yaml", "*.yaml", False, True),
        ("\\*.yaml", "x.yaml", False, False),
        ("a.b", "axb", False, False),  # dots are literal
    ],
)
def test_gitignore_rules(pattern: str, path: str, is_dir: bool, expected: bool) -> None:
    assert Excludes.of([pattern]).matches(path, is_dir=is_dir) is expected


@pytest.mark.parametrize("bad", ["", "   ", "!x", "x" * (MAX_PATTERN + 1)])
def test_unusable_patterns_are_refused(bad: str) -> None:
    with pytest.raises(PatternError):
        compile_pattern(bad)


def test_a_hostile_pattern_stays_linear() -> None:
    # Each * becomes [^/]*; a long run of them against a long name must not backtrack for ever.
    pattern = Excludes.of(["*" * 200 + "x"])
    assert pattern.matches("a" * 5000, is_dir=False) is False
