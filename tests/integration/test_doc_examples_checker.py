"""The checker of runnable documentation examples fails loudly: a marker it cannot act on, an example
whose exit code, output or loading differs from what the text says, never passes in silence."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docexamples import Example, MarkerError, check, extract

POLICY = """\
apiVersion: policyengine.io/v1
kind: Policy
metadata: {name: replica-cap}
spec:
  match: {kinds: [{apiGroups: [apps], kinds: [Deployment]}]}
  validations: [{expression: "object.spec.replicas <= 4"}]
"""


def one(text: str) -> Example:
    (found,) = extract(text, "doc.md")
    return found


@pytest.mark.parametrize(
    "text",
    [
        "<!-- runnable: exit=0 -->\n\nno block here\n",
        "<!-- runnable: exit=0 -->\n",
        "intro\n<!-- runnable: exit=0 -->\nthen prose\n```sh\ntrue\n```\n",
    ],
    ids=["prose-after", "end-of-file", "block-not-next"],
)
def test_a_marker_with_no_block_after_it_is_an_error(text: str) -> None:
    with pytest.raises(
        MarkerError, match=r"doc\.md:\d+: a runnable marker is not followed by a fenced block"
    ):
        extract(text, "doc.md")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<!-- runnable: exit=0 --\n```sh\ntrue\n```\n", "doc.md:1: a runnable marker does not parse"),
        ("  <!-- runnable: exit=0 -->\n```sh\ntrue\n```\n", "doc.md:1: a runnable marker does not parse"),
        ("<!-- runnable: exit=one -->\n```sh\ntrue\n```\n", "exit=one is not a number"),
        ('<!-- runnable: output="x" -->\n```sh\ntrue\n```\n', "a sh example needs exit=N"),
        ("<!-- runnable: exit=0 colour=red -->\n```sh\ntrue\n```\n", "takes no colour="),
        ("<!-- runnable: yaml=chart -->\n```yaml\na: 1\n```\n", "yaml=chart is not a kind of example"),
        ("<!-- runnable: yaml=policy -->\n```sh\ntrue\n```\n", "a policy example is a ```yaml block"),
        ("<!-- runnable: yaml=policy exit=0 -->\n```yaml\na: 1\n```\n", "takes no exit="),
        ("<!-- runnable: exit=0 exit=1 -->\n```sh\ntrue\n```\n", "repeats exit="),
    ],
)
def test_a_marker_that_does_not_parse_is_an_error(text: str, message: str) -> None:
    with pytest.raises(MarkerError, match=message.replace("*", r"\*").replace("`", "`")):
        extract(text, "doc.md")


def test_markers_are_read_with_their_kind_line_and_attributes() -> None:
    text = (
        '# t\n\n<!-- runnable: exit=1 output="DENY x" -->\n```sh\nfalse\n```\n\n'
        '<!-- runnable: yaml=manifest exit=2 args="--strict --config c.yaml" -->\n```yaml\nkind: Pod\n```\n'
        "```sh\nnot marked\n```\n"
    )
    sh, manifest = extract(text, "doc.md")
    assert (sh.line, sh.kind, sh.exit, sh.output, sh.body) == (3, "sh", 1, "DENY x", "false\n")
    assert (manifest.line, manifest.kind, manifest.exit, manifest.args) == (
        8,
        "manifest",
        2,
        ("--strict", "--config", "c.yaml"),
    )


def test_a_block_whose_exit_code_differs_fails(tmp_path: Path) -> None:
    example = one("<!-- runnable: exit=0 -->\n```sh\necho out; exit 3\n```\n")
    with pytest.raises(AssertionError, match=r"doc\.md:1: exit 3, the text says 0\nout"):
        check(example, tmp_path)


def test_a_block_whose_output_differs_fails(tmp_path: Path) -> None:
    example = one('<!-- runnable: exit=0 output="DENY" -->\n```sh\necho ALLOW\n```\n')
    with pytest.raises(AssertionError, match=r"doc\.md:1: output lacks 'DENY'"):
        check(example, tmp_path)


def test_a_block_that_matches_passes(tmp_path: Path) -> None:
    check(one('<!-- runnable: exit=4 output="ab" -->\n```sh\necho ab >&2; exit 4\n```\n'), tmp_path)


def test_a_policy_that_does_not_compile_fails(tmp_path: Path) -> None:
    broken = POLICY.replace("object.spec.replicas", "objct.spec.replicas")
    (tmp_path / "ok").mkdir()
    check(one(f"<!-- runnable: yaml=policy -->\n```yaml\n{POLICY}```\n"), tmp_path / "ok")
    with pytest.raises(AssertionError, match=r"doc\.md:1: the policy does not load:\n.*undeclared_reference"):
        check(one(f"<!-- runnable: yaml=policy -->\n```yaml\n{broken}```\n"), tmp_path)


def test_an_exception_naming_a_policy_not_shipped_fails(tmp_path: Path) -> None:
    text = (
        "<!-- runnable: yaml=policy -->\n```yaml\napiVersion: policyengine.io/v1\nkind: PolicyException\n"
        "metadata: {name: e}\nspec:\n  policies: [require-owner-label]\n"
        "  match: {kinds: [{apiGroups: [''], kinds: [Pod]}]}\n  reason: r\n  approvedBy: me\n```\n"
    )
    with pytest.raises(AssertionError, match="require-owner-label"):
        check(one(text), tmp_path)


def test_a_config_off_its_schema_fails(tmp_path: Path) -> None:
    text = (
        "<!-- runnable: yaml=config -->\n```yaml\napiVersion: policyengine.io/v1\nkind: GovernanceConfig\n"
        "metadata: {name: c}\nspec:\n  residency: {unknownLocation: maybe}\n```\n"
    )
    with pytest.raises(AssertionError, match=r"the config does not load:\n.*schema_invalid.*unknownLocation"):
        check(one(text), tmp_path)


def test_a_config_block_holding_a_policy_fails(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="not a GovernanceConfig"):
        check(one(f"<!-- runnable: yaml=config -->\n```yaml\n{POLICY}```\n"), tmp_path)


def test_a_manifest_is_checked_with_the_exit_the_marker_states(tmp_path: Path) -> None:
    manifest = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: x}]}\n"
    (tmp_path / "a").mkdir()
    check(one(f"<!-- runnable: yaml=manifest exit=0 -->\n```yaml\n{manifest}```\n"), tmp_path / "a")
    with pytest.raises(AssertionError, match=r"exit 0, the text says 1"):
        check(one(f"<!-- runnable: yaml=manifest exit=1 -->\n```yaml\n{manifest}```\n"), tmp_path)
