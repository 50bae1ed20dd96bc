"""The reaper's idle ticks leave no log lines; what it does, it says."""

from __future__ import annotations

import logging

from server.logs import QuietHousekeeping


def _record(level: int, msg: str) -> logging.LogRecord:
    return logging.LogRecord("arq.worker", level, __file__, 1, msg, None, None)


def test_idle_reaper_ticks_are_dropped_and_the_rest_kept() -> None:
    quiet = QuietHousekeeping()
    assert not quiet.filter(_record(logging.INFO, "  0.00s → cron:reap_stale_runs()"))
    assert not quiet.filter(_record(logging.INFO, "  0.00s ← cron:reap_stale_runs ● 0"))
    assert quiet.filter(_record(logging.INFO, "  0.01s → stage:r:0:0:run_stage('r', 0, 0)"))
    assert quiet.filter(_record(logging.WARNING, "reaper took over 1 stale run(s)"))
    assert quiet.filter(_record(logging.ERROR, "job cron:reap_stale_runs failed"))
