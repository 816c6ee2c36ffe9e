"""The git commit a CI run was made at, for the ``commit`` field of ``ci`` entries."""

from __future__ import annotations

import os
import shutil
import subprocess


def git_commit(directory: str | os.PathLike[str] = ".") -> str | None:
    """HEAD's commit id when ``directory`` is inside a git work tree, else None."""
    git = shutil.which("git")
    if git is None:
        return None
    try:
        done = subprocess.run(
            [git, "rev-parse", "--verify", "--quiet", "HEAD"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else None
