"""Policy authors' tests: Gatekeeper ``Suite``, Kyverno ``Test`` and native ``PolicyTest`` files, one runner.

::

    cases        Case, CaseResult, TestReport, Workspace: what both formats are made of
    gatorsuite   Suite files, run as ``gator verify`` runs them
    policytest   PolicyTest files (docs/testing.md)
    kyvernotest  Kyverno CLI Test files, run as ``kyverno test`` runs them
    kyvernoconvert  Kyverno ClusterPolicy validate.cel rules as ValidatingAdmissionPolicies
    runner       discovery and running: run_tests(paths, now=...) -> (TestReport, problems)

The dependencies run one way: runner -> gatorsuite, kyvernotest, policytest -> cases.

Requests are made by ``policyengine.codec``, the same codec the webhook and ``check`` use.
"""

from __future__ import annotations
