"""``verify`` of ``run_metric_latest``: no metric summary without logged values behind it.

The summaries (latest value, min, max, count) are kept by the writer so that searching thousands of
runs by a metric is one indexed join. A run's seal covers the summary of every metric it logged
(``runs.verify`` names an edited one), but a summary row *added* for a metric the run never logged
is outside every record, and would make ``runs --where`` find the run; this names each such row.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mlcustody.checks import Problem, ProblemKind
from mlcustody.metadata.schema import run_metric_latest, run_metrics


def check(conn: Connection) -> list[Problem]:
    """Summary rows whose (run, metric) has no row in ``run_metrics``."""
    logged = sa.select(run_metrics.c.run_id).where(
        run_metrics.c.run_id == run_metric_latest.c.run_id, run_metrics.c.key == run_metric_latest.c.key
    )
    query = sa.select(run_metric_latest.c.run_id, run_metric_latest.c.key).where(~logged.exists())
    return [
        Problem(
            ProblemKind.METRIC_SUMMARY_MISMATCH, f"run_metric_latest[{run_id}, {key}]", "no logged value of this metric"
        )
        for run_id, key in conn.execute(query.order_by(run_metric_latest.c.run_id, run_metric_latest.c.key))
    ]
