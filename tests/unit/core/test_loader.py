"""Loading is all-or-nothing and reports every problem as file:line: code: message (at path)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from policyengine import errors
from policyengine.errors import LoadError
from policyengine.loader import STDIN, InputLimits, parse_located, parse_prefix, parse_text, read_documents
from policyengine.policyset import load_policy_set
from tests.helpers import write

GOOD = """
apiVersion: policyengine.io/v1
kind: Policy
metadata:
  name: good
spec:
  validations:
    - expression: "true"
"""


def load(tmp_path: Path) -> list[errors.Problem]:
    with pytest.raises(LoadError) as info:
        load_policy_set([str(tmp_path)], include_bundled=False)
    return list(info.value.problems)


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    write(tmp_path / "bad.yaml", "apiVersion: v1\nkind: [unclosed\nmetadata: {}\n")
    (problem,) = load(tmp_path)
    assert problem.code == errors.YAML_SYNTAX
    assert problem.file.endswith("bad.yaml")
    assert problem.line == 3


def test_schema_problems_point_at_the_field_line(tmp_path: Path) -> None:
    write(
        tmp_path / "p.yaml",
        """
        apiVersion: policyengine.io/v1
        kind: Policy
        metadata:
          name: p
        spec:
          failurePolicy: Sometimes
          validations:
            - expression: "true"
              mesage: typo
        """,
    )
    problems = load(tmp_path)
    assert {p.code for p in problems} == {errors.SCHEMA_INVALID}
    by_path = {p.path: p for p in problems}
    assert by_path["spec.failurePolicy"].line == 6
    assert "mesage" in by_path["spec.validations[0]"].message
    assert by_path["spec.validations[0]"].line == 8


def test_cel_compile_error_names_the_expression_path(tmp_path: Path) -> None:
    write(
        tmp_path / "p.yaml",
        """
        apiVersion: policyengine.io/v1
        kind: Policy
        metadata:
          name: p
        spec:
          validations:
            - expression: "true"
            - expression: "true"
            - expression: "object.spec.replicas >"
        """,
    )
    (problem,) = load(tmp_path)
    assert problem.code == errors.CEL_COMPILE
    assert problem.path == "spec.validations[2].expression"
    assert problem.line == 9
    assert problem.render().startswith(f"{tmp_path / 'p.yaml'}:9: cel_compile: ")


def test_undeclared_and_later_variables_are_rejected_at_load(tmp_path: Path) -> None:
    # Kubernetes' checker declares each variable only after compiling it: a variable may read the ones
    # before it, and every other expression all of them; any other variables.<name> is a load error.
    write(
        tmp_path / "p.yaml",
        """
        apiVersion: policyengine.io/v1
        kind: Policy
        metadata:
          name: p
        spec:
          variables:
            - {name: a, expression: "variables.b + 1"}
            - {name: b, expression: "variables.a"}
          validations:
            - expression: "variables.a > 0 && variables['b'] > 0"
            - expression: "variables.nope == 1"
              messageExpression: "string(variables.a)"
        """,
    )
    problems = load(tmp_path)
    assert [(p.code, p.path, p.line) for p in problems] == [
        (errors.CEL_COMPILE, "spec.variables[0].expression", 7),
        (errors.CEL_COMPILE, "spec.validations[1].expression", 11),
    ]
    assert "variables.b is declared after this variable" in problems[0].message
    assert "variables.nope is not declared (variables: a, b)" in problems[1].message


def test_unknown_kind_in_a_policy_directory(tmp_path: Path) -> None:
    write(tmp_path / "cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    (problem,) = load(tmp_path)
    assert problem.code == errors.UNKNOWN_KIND
    assert problem.line == 2 and problem.path == "kind"


def test_not_an_object(tmp_path: Path) -> None:
    write(tmp_path / "list.yaml", "- just\n- a list\n")
    (problem,) = load(tmp_path)
    assert problem.code == errors.NOT_AN_OBJECT


def test_duplicate_policy_names(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", GOOD)
    write(tmp_path / "b.yaml", GOOD)
    (problem,) = load(tmp_path)
    assert problem.code == errors.DUPLICATE_NAME
    assert "a.yaml:1" in problem.message


def test_exception_naming_an_unknown_policy_and_a_bad_expiry(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", GOOD)
    write(
        tmp_path / "exc.yaml",
        """
        apiVersion: policyengine.io/v1
        kind: PolicyException
        metadata:
          name: e
        spec:
          policies: [good, missing]
          expires: next tuesday
        """,
    )
    problems = load(tmp_path)
    assert sorted(p.code for p in problems) == [errors.INVALID_VALUE, errors.UNKNOWN_POLICY]
    unknown = next(p for p in problems if p.code == errors.UNKNOWN_POLICY)
    assert unknown.path == "spec.policies[1]"


def test_exception_may_not_use_a_wildcard(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", GOOD)
    write(
        tmp_path / "exc.yaml",
        "apiVersion: policyengine.io/v1\nkind: PolicyException\nmetadata: {name: e}\nspec: {policies: ['*']}\n",
    )
    (problem,) = load(tmp_path)
    assert problem.code == errors.SCHEMA_INVALID and problem.path == "spec.policies[0]"


def test_deny_and_warn_together_are_rejected(tmp_path: Path) -> None:
    write(
        tmp_path / "p.yaml",
        GOOD.replace("spec:\n", "spec:\n  validationActions: [Deny, Warn]\n"),
    )
    (problem,) = load(tmp_path)
    assert problem.code == errors.INVALID_VALUE and problem.path == "spec.validationActions"


def test_missing_path_and_unreadable_file(tmp_path: Path) -> None:
    (tmp_path / "latin1.yaml").write_bytes(b"name: caf\xe9\n")
    with pytest.raises(LoadError) as info:
        read_documents([str(tmp_path / "nope"), str(tmp_path / "latin1.yaml")])
    assert [p.code for p in info.value.problems] == [errors.FILE_NOT_FOUND, errors.READ_ERROR]


@pytest.mark.parametrize("errors_mode", ["strict", "surrogateescape"])
def test_non_utf8_names_the_line_of_the_bad_byte_in_files_and_on_stdin(
    tmp_path: Path, errors_mode: str
) -> None:
    data = b"apiVersion: v1\nkind: Pod\nmetadata:\n  name: caf\xe9\n"
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(data)
    stdin = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors=errors_mode)
    with pytest.raises(LoadError) as info:
        read_documents([str(bad), STDIN], stdin=stdin, stdin_ok=True)
    assert [(p.file, p.line, p.code) for p in info.value.problems] == [
        (str(bad), 4, errors.READ_ERROR),
        ("<stdin>", 4, errors.READ_ERROR),
    ]
    assert "not UTF-8" in info.value.problems[1].message


def test_a_config_file_holding_other_kinds_is_reported_once_per_document(tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "cfg.yaml",
        """
        apiVersion: v1
        kind: Namespace
        metadata: {name: a}
        ---
        apiVersion: policyengine.io/v1
        kind: GovernanceConfig
        metadata: {name: ok}
        spec: {}
        """,
    )
    with pytest.raises(LoadError) as info:
        load_policy_set([], config_paths=[str(cfg)], include_bundled=False)
    assert [(p.code, p.line, p.path) for p in info.value.problems] == [(errors.UNKNOWN_KIND, 2, "kind")]
    assert "--config takes GovernanceConfig documents, not Namespace" in info.value.problems[0].message


def test_a_repeated_mapping_key_is_a_problem_but_a_merge_override_is_not() -> None:
    # kubectl rejects a repeated key; PyYAML would keep the last value without a word.
    text = (
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  labels: &l {x: '1'}\n"
        "  annotations:\n    <<: *l\n    x: '2'\nspec:\n  containers: [{name: c, image: x}]\n"
        "  containers: []\n"
    )
    with pytest.raises(LoadError) as info:
        parse_text(text, "m.yaml")
    (problem,) = info.value.problems
    assert (problem.line, problem.code, problem.path) == (11, errors.YAML_SYNTAX, "spec.containers")
    assert "mapping key 'containers' is already defined at line 10" in problem.message
    (doc,) = parse_text(text.replace("  containers: []\n", ""), "m.yaml")
    assert doc.data["metadata"]["annotations"] == {"x": "2"}


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", "kind: [\n")
    write(tmp_path / "b.yaml", GOOD.replace('"true"', '"1 +"'))
    write(tmp_path / "c.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n")
    codes = sorted(p.code for p in load(tmp_path))
    assert codes == sorted([errors.YAML_SYNTAX, errors.CEL_COMPILE, errors.UNKNOWN_KIND])


def test_a_failed_load_leaves_the_working_set_untouched(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", GOOD)
    working = load_policy_set([str(tmp_path)], include_bundled=False)
    write(tmp_path / "b.yaml", GOOD.replace("name: good", "name: other").replace('"true"', '"("'))
    with pytest.raises(LoadError):
        load_policy_set([str(tmp_path)], include_bundled=False)
    assert [p.name for p in working.policies] == ["good"]


def test_multi_document_lines_and_field_positions() -> None:
    docs = parse_text(
        "a: 1\n---\n# comment\nkind: Pod\nspec:\n  containers:\n  - name: x\n    image: y\n", "f.yaml"
    )
    assert [d.line for d in docs] == [1, 4]
    assert docs[1].line_of(("spec", "containers", 0, "image")) == 8
    assert docs[1].line_of(("spec", "containers", 3, "image")) == 6  # nearest existing ancestor
    assert docs[1].column_of(("spec", "containers", 0, "image")) == 5


def test_kubernetes_lists_are_expanded_with_item_lines() -> None:
    text = "apiVersion: v1\nkind: List\nitems:\n- kind: Namespace\n  metadata: {name: a}\n- kind: Namespace\n  metadata:\n    name: b\n"
    from policyengine.loader import expand_lists

    docs = list(expand_lists(parse_text(text, "l.yaml")))
    assert [d.name for d in docs] == ["a", "b"]
    assert [d.line for d in docs] == [4, 6]
    assert docs[1].line_of(("metadata", "name")) == 8


def test_json_documents_load_with_lines(tmp_path: Path) -> None:
    write(
        tmp_path / "p.json",
        '{\n  "apiVersion": "policyengine.io/v1",\n  "kind": "Policy",\n  "metadata": {"name": "j"},\n  "spec": {"validations": [{"expression": 1}]}\n}\n',
    )
    (problem,) = load(tmp_path)
    assert problem.code == errors.SCHEMA_INVALID and problem.line == 5


def test_a_file_named_twice_is_read_once(tmp_path: Path) -> None:
    write(tmp_path / "pol" / "a.yaml", GOOD)
    (tmp_path / "link").symlink_to(tmp_path / "pol")
    ps = load_policy_set(
        [str(tmp_path / "pol"), str(tmp_path / "link"), str(tmp_path / "pol" / "a.yaml")],
        include_bundled=False,
    )
    assert [p.name for p in ps.policies] == ["good"]


def test_cel_problems_are_reported_with_schema_problems_of_the_same_document(tmp_path: Path) -> None:
    write(
        tmp_path / "p.yaml",
        """
        apiVersion: policyengine.io/v1
        kind: Policy
        metadata:
          name: Not_A_Name
        spec:
          validations:
            - expression: "size(object.metadata.name) <"
        """,
    )
    assert sorted(p.code for p in load(tmp_path)) == [errors.CEL_COMPILE, errors.SCHEMA_INVALID]


def test_parse_prefix_keeps_the_documents_before_a_syntax_error() -> None:
    text = "a: 1\na: 2\n---\nb: 2\n---\nc: [oops\n"
    docs, duplicated, broken = parse_prefix(text, "f.yaml")
    assert [d.data for d in docs] == [{"a": 2}, {"b": 2}]
    assert [(p.line, p.code) for p in duplicated] == [(2, errors.YAML_SYNTAX)]
    assert broken is not None and broken.code == errors.YAML_SYNTAX and broken.line == 7
    with pytest.raises(LoadError) as raised:
        parse_located(text, "f.yaml")  # the strict reader still refuses the file as a whole
    assert list(raised.value.problems) == [broken]


def test_parse_prefix_still_raises_on_a_bound() -> None:
    with pytest.raises(LoadError) as raised:
        parse_prefix("a: 1\n---\nb: 2\n---\nc: 3\n", "f.yaml", InputLimits(max_documents=2))
    assert [p.code for p in raised.value.problems] == [errors.READ_ERROR]
