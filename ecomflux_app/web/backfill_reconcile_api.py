"""After-sale API for the embedded page: backfill runs and reconciliation reports of g.shop only."""

from __future__ import annotations

from datetime import date, timedelta

from flask import Blueprint, Response, g, request

from ..models import BackfillRun, ReconciliationRun
from ..statuses import ConnectionStatus, RunStatus
from . import params
from .api import _connection, _error, _json, _require_installed
from .session_auth import require_session_token
from ..sync.backfill import RESUMABLE, active_run, cancel_backfill, progress, resume_backfill, stalled, start_backfill
from ..sync.payouts import history_after_backfill
from ..sync.reconcile import (fixable, queue_fix, queue_post_missing, queue_reconciliation, report_csv, report_json,
                              shop_today)

bp = Blueprint("backfill_reconcile_api", __name__, url_prefix="/api")

MAX_RANGE_DAYS = 93
MAX_BACKFILL_YEARS = 5


def _ready():
    """The token's shop when installed and connected to QuickBooks, else an error response."""
    shop, problem = _require_installed()
    if problem is not None:
        return problem
    conn = _connection(shop)
    if conn is None or conn.status != ConnectionStatus.CONNECTED:
        return _error(409, "connect QuickBooks first")
    return None


def _date(body: dict, name: str) -> date | None:
    try:
        return params.day(body.get(name), name)
    except params.BadParameter as exc:
        raise ValueError(exc.description) from None


def _body() -> dict:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else {}


@bp.post("/backfill")
@require_session_token
def start_backfill_route():
    problem = _ready()
    if problem is not None:
        return problem
    try:
        since = _date(_body(), "since")
    except ValueError as exc:
        return _error(400, str(exc), field="since")
    today = shop_today(g.shop)
    if since is None or since > today or since < today - timedelta(days=366 * MAX_BACKFILL_YEARS):
        return _error(400, f"since must be a date within the last {MAX_BACKFILL_YEARS} years", field="since")
    running = active_run(g.shop)
    if running is not None and stalled(running):
        return _error(409, "the last import stopped before it finished (its process ended): resume or cancel it",
                      backfill=progress(running))
    if running is not None:
        return _error(409, "a backfill is already running", backfill=progress(running))
    run = start_backfill(g.shop, since)
    history_after_backfill(g.shop, since)  # the same history's payouts, after its orders (bulk queue is FIFO)
    return _json(progress(run), 202)


def _own_backfill(run_id: int) -> BackfillRun | None:
    return BackfillRun.get_or_none((BackfillRun.id == run_id) & (BackfillRun.shop == g.shop))


@bp.post("/backfill/<id:run_id>/resume")
@require_session_token
def resume_backfill_route(run_id: int):
    """Continue a stalled, paused or failed import from where it stopped (on the bulk queue)."""
    problem = _ready()
    if problem is not None:
        return problem
    run = _own_backfill(run_id)
    if run is None:
        return _error(404, "no such import")
    try:
        return _json(progress(resume_backfill(run)), 202)
    except ValueError as exc:
        return _error(409, str(exc), backfill=progress(run))


@bp.post("/backfill/<id:run_id>/cancel")
@require_session_token
def cancel_backfill_route(run_id: int):
    """Stop an import for good; what it posted stays posted, and a new import can start."""
    shop, problem = _require_installed()
    if problem is not None:
        return problem
    run = _own_backfill(run_id)
    if run is None:
        return _error(404, "no such import")
    if run.status not in RESUMABLE:
        return _error(409, f"this import is {run.status}: nothing to cancel", backfill=progress(run))
    return _json(progress(cancel_backfill(run, f"shop:{shop.domain}")))


@bp.get("/backfill")
@require_session_token
def backfill_progress():
    runs = (BackfillRun.select().where(BackfillRun.shop == g.shop).order_by(BackfillRun.id.desc()).limit(10))
    items = [progress(r) for r in runs]
    return _json({"current": items[0] if items else None, "runs": items})


@bp.post("/reconciliation")
@require_session_token
def start_reconciliation():
    problem = _ready()
    if problem is not None:
        return problem
    body = _body()
    try:
        start, end = _date(body, "start"), _date(body, "end")
    except ValueError as exc:
        return _error(400, str(exc))
    if body.get("sample_week") and start is None:  # the page's "sample week": the last full 7 days
        end = shop_today(g.shop) - timedelta(days=1)
        start = end - timedelta(days=6)
    if start is None or end is None or end < start:
        return _error(400, "start and end dates are required, start <= end")
    if (end - start).days > MAX_RANGE_DAYS:
        return _error(400, f"at most {MAX_RANGE_DAYS} days per reconciliation")
    return _json(report_json(queue_reconciliation(g.shop, start, end)), 202)


@bp.get("/reconciliation/latest")
@require_session_token
def latest_reconciliation():
    """The shop's newest reconciliation (the page's Fix panel reads it), or null."""
    run = (ReconciliationRun.select().where(ReconciliationRun.shop == g.shop)
           .order_by(ReconciliationRun.id.desc()).first())
    return _json(report_json(run) if run is not None else None)


def _own_run(run_id: int) -> ReconciliationRun | None:
    return ReconciliationRun.get_or_none((ReconciliationRun.id == run_id) & (ReconciliationRun.shop == g.shop))


@bp.get("/reconciliation/<id:run_id>")
@require_session_token
def reconciliation_report(run_id: int):
    run = _own_run(run_id)
    if run is None:
        return _error(404, "no such reconciliation")
    return _json(report_json(run))


@bp.get("/reconciliation/<id:run_id>.csv")
@require_session_token
def reconciliation_csv(run_id: int):
    run = _own_run(run_id)
    if run is None:
        return _error(404, "no such reconciliation")
    return Response(report_csv(run), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="reconciliation-{run.start_date}-{run.end_date}.csv"'})


def _finished_run(run_id: int):
    """This shop's finished reconciliation, or the answer why it cannot be acted on."""
    problem = _ready()
    if problem is not None:
        return None, problem
    run = _own_run(run_id)
    if run is None:
        return None, _error(404, "no such reconciliation")
    if run.status != RunStatus.DONE:
        return None, _error(409, f"the reconciliation is {run.status}")
    return run, None


@bp.post("/reconciliation/<id:run_id>/post-missing")
@require_session_token
def reconciliation_post_missing(run_id: int):
    run, problem = _finished_run(run_id)
    if problem is not None:
        return problem
    missing = [d for d in (run.report or {}).get("differences", [])
               if d.get("kind") in ("missing_in_qbo", "missing_refund")]
    if not missing:
        return _json(dict(report_json(run), queued=0))
    queue_post_missing(run)
    return _json(dict(report_json(run), queued=len(missing)), 202)


@bp.post("/reconciliation/<id:run_id>/fix")
@require_session_token
def reconciliation_fix(run_id: int):
    """Queue the action that fixes one difference of a finished report (body: {"index": n})."""
    run, problem = _finished_run(run_id)
    if problem is not None:
        return problem
    index = _body().get("index")
    differences = (run.report or {}).get("differences") or []
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(differences):
        return _error(400, "index must be the position of a difference in the report", field="index")
    if not fixable(differences[index]):
        return _error(409, "EcomFlux has no action for this difference: it is for the bookkeeper to review")
    queue_fix(run, index)
    return _json(dict(report_json(run), queued=index), 202)
