"""A Chorus worker (``python -m workers``) whose stages run without a BudgetMeter.

The baseline of bench_budget_overhead.py's "no meter" phase: the stop check polls the
cancel and fence keys only, as before budgets were enforced mid-stream (the web process's
check before a run starts is unchanged). Not for production: nothing is charged.

    python bench/_no_meter_worker.py
"""

from __future__ import annotations

from typing import Any

from server.cli import run_cli
from workers.__main__ import _check, serve
from workers.executor import StageExecutor


async def _no_meter(self: StageExecutor, *args: Any) -> None:
    return None


StageExecutor._meter = _no_meter  # type: ignore[method-assign,assignment]

if __name__ == "__main__":
    run_cli("chorus worker", serve, _check)
