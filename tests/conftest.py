"""Test-session rules shared by every test file.

Zero skipped tests (issue 11): a skipped test is a test that cannot fail, so a run that skips
any test fails, and the summary says how many were skipped.  Set ``SEM_MODELS_ALLOW_SKIPS=1``
to allow skips locally (e.g. without the ``test`` extra installed).
"""
from __future__ import annotations

import os

import pytest

_ALLOW = os.environ.get("SEM_MODELS_ALLOW_SKIPS", "") not in ("", "0")


def _skipped(terminalreporter) -> list:
    return terminalreporter.stats.get("skipped", [])


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    skipped = _skipped(terminalreporter)
    if not skipped:
        terminalreporter.write_line("skipped tests: 0 (a skip fails the run)")
        return
    where = sorted({str(getattr(r, "nodeid", "")) or str(r.longrepr) for r in skipped})
    verdict = "allowed by SEM_MODELS_ALLOW_SKIPS" if _ALLOW else "the run FAILS"
    terminalreporter.write_line(f"skipped tests: {len(skipped)} ({verdict})", red=not _ALLOW)
    for item in where[:50]:
        terminalreporter.write_line(f"    {item}")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or _ALLOW:
        return
    if _skipped(reporter) and session.exitstatus == 0:
        session.exitstatus = 1
