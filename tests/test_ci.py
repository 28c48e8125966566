"""CI cannot pass quietly: a skipped test fails there, and `.ci/run` refuses to start without its data."""

from __future__ import annotations

import os
import subprocess

import pytest
from conftest import REPO_ROOT

pytest_plugins = ["pytester"]

SKIPPING_TEST = """
import pytest

def test_needs_data():
    pytest.skip("real data not found")

def test_runs():
    assert True
"""


@pytest.fixture
def project(pytester):
    pytester.makeconftest((REPO_ROOT / "tests" / "conftest.py").read_text())
    pytester.makepyfile(SKIPPING_TEST)
    return pytester


def test_a_skip_fails_with_its_reason_where_no_skips_are_allowed(project, monkeypatch):
    monkeypatch.setenv("VIHTR_NO_SKIPS", "1")
    result = project.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*VIHTR_NO_SKIPS=1*real data not found*"])


def test_a_users_run_skips_and_says_why(project, monkeypatch):
    monkeypatch.delenv("VIHTR_NO_SKIPS", raising=False)
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*SKIPPED*real data not found*"])


def test_ci_refuses_to_run_without_the_data(tmp_path):
    env = {**os.environ, "VIHTR_DATA_ROOT": str(tmp_path / "nothing")}
    out = subprocess.run(
        ["bash", ".ci/run"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 1
    assert "CI needs the real data" in out.stderr
