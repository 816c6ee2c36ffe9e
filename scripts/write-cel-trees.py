"""Rewrite policyengine/cel/cel-trees.json, the parse trees of the bundled packs' CEL expressions.

    python scripts/write-cel-trees.py

Run after changing a bundled pack's expressions, the CEL grammar (cel.lark), the lark version or the
compile-time checks' environment (the library's functions, the type names); a test
(tests/unit/cel/test_cel_shipped_trees.py) fails until then.
"""

from __future__ import annotations

from policyengine.cel import frontend, parser, shippedtrees


def bundled_sources() -> tuple[list[str], str, dict[str, set[str]]]:
    """Every expression text that loading the bundled packs parses (without positions); the checks'
    environment, and the keys each text passed the checks under in it."""
    from policyengine.policyset import load_policy_set

    with parser.parse_once(), parser.without_shipped_trees(), frontend.recording_checks() as recorded:
        load_policy_set([], include_bundled=True)
        parsed = parser.parsed_texts()
    (environment, checked), *others = recorded.items()  # the default backend's front end, alone
    assert not others, "the bundled packs were checked in more than one environment"
    return sorted(source for source, positions in parsed if not positions), environment, checked


def current_text() -> str:
    """What the file must hold for the bundled packs, this grammar and this lark."""
    sources, environment, checked = bundled_sources()
    return shippedtrees.text(sources, parser.parse_text, parser.grammar_fingerprint(), checked, environment)


if __name__ == "__main__":
    shippedtrees.TREES.write_text(current_text(), encoding="utf-8")
    print(f"wrote {shippedtrees.TREES}")
