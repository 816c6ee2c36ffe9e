"""Rewrite policyengine/cel/cel-trees.json, the parse trees of the bundled packs' CEL expressions.

    python scripts/write-cel-trees.py

Run after changing a bundled pack's expressions, the CEL grammar (cel.lark) or the lark version; a test
(tests/unit/cel/test_cel_shipped_trees.py) fails until then.
"""

from __future__ import annotations

from policyengine.cel import parser, shippedtrees


def bundled_sources() -> list[str]:
    """Every expression text that loading the bundled packs parses (without positions)."""
    from policyengine.policyset import load_policy_set

    with parser.parse_once(), parser.without_shipped_trees():
        load_policy_set([], include_bundled=True)
        parsed = parser.parsed_texts()
    return sorted(source for source, positions in parsed if not positions)


def current_text() -> str:
    """What the file must hold for the bundled packs, this grammar and this lark."""
    return shippedtrees.text(bundled_sources(), parser.parse_text, parser.grammar_fingerprint())


if __name__ == "__main__":
    shippedtrees.TREES.write_text(current_text(), encoding="utf-8")
    print(f"wrote {shippedtrees.TREES}")
