"""Support console pages for payouts: each shop's payouts, their balance transactions and the QBO exchanges."""

from __future__ import annotations

import json

from flask import Blueprint, abort, render_template, request
from flask_login import login_required

from ..models import Payout, ProcessingAttempt, Shop, SyncRecord
from . import params

bp = Blueprint("support_payouts", __name__, url_prefix="/support/payouts")
PAGE_SIZE = 50


@bp.get("/")
@login_required
def payouts():
    query = Payout.select(Payout, Shop).join(Shop)
    shop = (request.args.get("shop") or "").strip().lower()
    status = (request.args.get("status") or "").strip().upper()
    if shop:
        query = query.where(Shop.domain == shop)
    if status:
        query = query.where(Payout.status == status)
    before = params.query_int("before")
    if before:
        query = query.where(Payout.id < before)
    rows = list(query.order_by(Payout.id.desc()).limit(PAGE_SIZE + 1))
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    keys = [f"payout:{r.payout_id}" for r in rows]
    records = {(r.shop_id, r.source_key): r for r in SyncRecord.select().where(SyncRecord.source_key.in_(keys))} \
        if keys else {}
    for row in rows:
        row.record = records.get((row.shop_id, f"payout:{row.payout_id}"))
    return render_template("support/payouts.html", rows=rows, shop=shop, status=status,
                           next_before=rows[-1].id if more and rows else None)


@bp.get("/<id:row_id>")
@login_required
def payout_detail(row_id: int):
    row = Payout.get_or_none(Payout.id == row_id) or abort(404)
    record = SyncRecord.get_or_none((SyncRecord.shop == row.shop_id)
                                    & (SyncRecord.source_key == f"payout:{row.payout_id}"))
    attempts = []
    if record is not None:
        attempts = list(ProcessingAttempt.select().where(ProcessingAttempt.sync_record == record.id)
                        .order_by(ProcessingAttempt.id))
        for attempt in attempts:  # the client keeps no tokens in an exchange; payouts carry no personal data
            attempt.request_text = json.dumps(attempt.request, indent=2) if attempt.request else ""
            response = attempt.response or {}
            attempt.response_text = (f"HTTP {response.get('status')} in {response.get('duration_ms')} ms\n"
                                     f"{response.get('response') or ''}") if response else ""
    return render_template("support/payout_detail.html", p=row, record=record, attempts=attempts,
                           transactions=row.transactions or [])
