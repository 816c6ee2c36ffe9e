"""PolicyVariables: shared variables every native Policy reads as ``variables.<name>`` without copying
them, with their scope rules checked at load and reported at file:line."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from policyengine import errors
from policyengine.engine import Engine
from policyengine.errors import LoadError, Problem
from policyengine.gate import request_for
from policyengine.loader import parse_text
from policyengine.model import Decision
from policyengine.policyset import PolicySet, load_policy_set
from tests.helpers import write

NOW = datetime(2026, 1, 1, tzinfo=UTC)

SHARED = """
apiVersion: policyengine.io/v1
kind: PolicyVariables
metadata: {name: common}
spec:
  variables:
    - name: images
      expression: "object.spec.containers.map(c, c.image)"
    - name: latest
      expression: "variables.images.filter(i, i.endsWith(':latest'))"
    - name: broken
      expression: "object.spec.nope.nothing"
"""


def native(name: str, variables: str, validation: str) -> str:
    return f"""
apiVersion: policyengine.io/v1
kind: Policy
metadata: {{name: {name}}}
spec:
  match: {{kinds: [{{apiGroups: [""], kinds: [Pod]}}]}}
{variables}
  validations:
    - expression: "{validation}"
      messageExpression: "'latest: ' + variables.latest.join(', ')"
"""


def load(tmp_path: Path) -> PolicySet:
    return load_policy_set([str(tmp_path)], include_bundled=False)


def problems(tmp_path: Path) -> list[Problem]:
    with pytest.raises(LoadError) as info:
        load(tmp_path)
    return list(info.value.problems)


def decide(policy_set: PolicySet, image: str = "nginx:latest") -> Decision:
    manifest = f"apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec: {{containers: [{{name: c, image: '{image}'}}]}}\n"
    (doc,) = parse_text(manifest, "pod.yaml")
    return Engine(policy_set).evaluate(request_for(doc), now=NOW)


def test_policies_in_other_files_read_shared_variables(tmp_path: Path) -> None:
    write(tmp_path / "shared.yaml", SHARED)
    write(tmp_path / "a.yaml", native("no-latest", "", "size(variables.latest) == 0"))
    write(tmp_path / "more" / "b.yaml", native("some-image", "", "size(variables.images) > 0"))
    policy_set = load(tmp_path)
    assert [v.name for v in policy_set.shared_variables] == ["images", "latest", "broken"]
    decision = decide(policy_set)
    assert [(r.policy, r.outcome.value, r.message) for r in decision.results] == [
        ("no-latest", "fail", "latest: nginx:latest"),
        ("some-image", "pass", ""),
    ]
    # Only what a policy reads is bound into it: `broken` (which would fail) is never evaluated.
    by_name = policy_set.by_name()
    assert [v.name for v in by_name["no-latest"].variables] == ["images", "latest"]
    assert decide(policy_set, "nginx:1.27").allowed


def test_a_policys_own_variable_of_the_same_name_wins(tmp_path: Path) -> None:
    write(tmp_path / "shared.yaml", SHARED)
    own = '  variables:\n    - {name: latest, expression: "[]"}'
    write(tmp_path / "a.yaml", native("own-latest", own, "size(variables.latest) == 0"))
    assert decide(load(tmp_path)).allowed


def test_redeclaring_a_name_a_used_shared_variable_reads_is_a_load_error(tmp_path: Path) -> None:
    write(tmp_path / "shared.yaml", SHARED)
    own = '  variables:\n    - {name: images, expression: "[1]"}'
    write(tmp_path / "a.yaml", native("shadows", own, "size(variables.latest) == 0"))
    (problem,) = problems(tmp_path)
    assert (problem.file, problem.line, problem.code) == (str(tmp_path / "a.yaml"), 7, errors.DUPLICATE_NAME)
    assert problem.path == "spec.variables[0].expression"
    assert (
        "variables.images is also a shared variable, which variables.latest of PolicyVariables 'common'"
        in (problem.message)
    )
    assert f"({tmp_path / 'shared.yaml'}:9)" in problem.message


def test_a_name_is_declared_by_one_policy_variables_document(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", SHARED)
    write(tmp_path / "b.yaml", SHARED.replace("name: common", "name: again"))
    found = problems(tmp_path)
    assert [(p.file, p.line, p.code) for p in found] == [
        (str(tmp_path / "b.yaml"), line, errors.DUPLICATE_NAME) for line in (7, 9, 11)
    ]
    assert f"variables.images is already declared by PolicyVariables 'common' ({tmp_path / 'a.yaml'}:7)" in (
        found[0].message
    )


def test_a_shared_variable_reads_only_shared_variables_declared_before_it(tmp_path: Path) -> None:
    write(
        tmp_path / "shared.yaml",
        """
        apiVersion: policyengine.io/v1
        kind: PolicyVariables
        metadata: {name: order}
        spec:
          variables:
            - {name: first, expression: "variables.second + variables.nowhere"}
            - {name: second, expression: "1"}
        """,
    )
    (problem_a, problem_b) = problems(tmp_path)
    assert (problem_a.line, problem_a.code, problem_a.path) == (
        6,
        errors.CEL_COMPILE,
        "spec.variables[0].expression",
    )
    assert "variables.nowhere is not a shared variable declared before this one (declared: none)" in (
        problem_a.message
    )
    assert "variables.second is not a shared variable declared before" in problem_b.message


def test_undeclared_names_are_still_load_errors_and_other_origins_see_no_shared_variables(
    tmp_path: Path,
) -> None:
    write(tmp_path / "shared.yaml", SHARED)
    write(tmp_path / "a.yaml", native("typo", "", "size(variables.latset) == 0"))
    write(
        tmp_path / "vap.yaml",
        """
        apiVersion: admissionregistration.k8s.io/v1
        kind: ValidatingAdmissionPolicy
        metadata: {name: vap}
        spec:
          matchConstraints: {resourceRules: [{apiGroups: [""], apiVersions: [v1], resources: [pods], operations: [CREATE]}]}
          validations: [{expression: "size(variables.latest) == 0"}]
        ---
        apiVersion: admissionregistration.k8s.io/v1
        kind: ValidatingAdmissionPolicyBinding
        metadata: {name: vap-binding}
        spec: {policyName: vap, validationActions: [Deny]}
        """,
    )
    messages = sorted(p.message for p in problems(tmp_path))
    assert messages == [
        "variables.latest is not declared (variables: none)",
        "variables.latset is not declared (variables: none)",
    ]


def test_schema_and_compile_problems_name_the_line_even_when_no_policy_uses_it(tmp_path: Path) -> None:
    write(
        tmp_path / "shared.yaml",
        """
        apiVersion: policyengine.io/v1
        kind: PolicyVariables
        metadata: {name: bad}
        spec:
          variables:
            - {name: not-an-identifier, expression: "1"}
            - {name: fine, expression: "1 +"}
        """,
    )
    found = problems(tmp_path)
    assert [(p.line, p.code, p.path) for p in found] == [
        (6, errors.SCHEMA_INVALID, "spec.variables[0].name"),
        (7, errors.CEL_COMPILE, "spec.variables[1].expression"),
    ]


def test_the_digest_covers_policy_variables(tmp_path: Path) -> None:
    write(tmp_path / "shared.yaml", SHARED)
    before = load(tmp_path).digest
    write(tmp_path / "shared.yaml", SHARED.replace(":latest", ":edge"))
    assert load(tmp_path).digest != before
