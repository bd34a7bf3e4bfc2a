"""In CI a missing `../shared/corpus` fails the run instead of skipping its tests."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from .conftest import CORPUS, REPO_ROOT, missing_corpus_error


def test_ci_without_the_corpus_is_an_error(tmp_path: Path) -> None:
    error = missing_corpus_error({"CI": "true"}, tmp_path / "absent")
    assert error is not None and "corpus" in error


def test_ci_with_the_corpus_or_a_local_run_without_it_is_fine(tmp_path: Path) -> None:
    assert missing_corpus_error({"CI": "true"}, tmp_path) is None
    assert missing_corpus_error({}, tmp_path / "absent") is None


def test_pytest_refuses_to_run_in_ci_when_the_corpus_is_not_beside_the_checkout(tmp_path: Path) -> None:
    """A clone whose parent has no shared/ folder, as a careless CI would lay it out."""
    clone = tmp_path / "clone"
    clone.mkdir()
    (clone / "tests").mkdir()
    for name in ("__init__.py", "conftest.py", "private_postgres.py", "test_plans.py"):
        shutil.copy(REPO_ROOT / "tests" / name, clone / "tests" / name)
    shutil.copy(REPO_ROOT / "pyproject.toml", clone / "pyproject.toml")
    assert not (tmp_path / "shared").exists() and CORPUS.is_relative_to(REPO_ROOT.parent)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:xdist", "tests/test_plans.py"],
        cwd=clone, env={"CI": "true", "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 4, done.stdout + done.stderr
    assert "corpus is missing" in done.stderr
