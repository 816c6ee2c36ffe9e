"""Policy authors' tests: Gatekeeper ``Suite`` files and native ``PolicyTest`` files, run by one runner.

::

    cases        Case, CaseResult, TestReport, Workspace: what both formats are made of
    gatorsuite   Suite files, run as ``gator verify`` runs them
    policytest   PolicyTest files (docs/testing.md)
    runner       discovery and running: run_tests(paths, now=...) -> (TestReport, problems)

The dependencies run one way: runner -> gatorsuite, policytest -> cases.

Requests are made by ``policyengine.codec``, the same codec the webhook and ``check`` use.
"""

from __future__ import annotations
