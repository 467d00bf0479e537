"""`make bench`: every benchmark in turn, results to bench/results/latest.json and latest.md."""

from __future__ import annotations

import json
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str]) -> int:
    from bench import intake, qbo

    only = set(argv)
    plan = [
        ("intake", lambda: intake.run(duration="10s", burst=20000, rounds=3)),
        ("qbo_efficiency", lambda: qbo.efficiency(1000)),
        # Same week with many more buyers (700 possible, many sharing a name): creates dominate.
        ("qbo_efficiency_new_buyers", lambda: qbo.efficiency(1000, customers=700)),
        # The same week on a quiet day: each order posted before the next arrives (no batching).
        ("qbo_efficiency_one_at_a_time", lambda: qbo.efficiency(1000, one_at_a_time=True)),
        # QBO calls per Shopify Payments payout (Deposit), receipts linked / dedicated clearing account.
        ("qbo_payouts", lambda: qbo.payouts()),
        ("qbo_payouts_dedicated_clearing", lambda: qbo.payouts(clearing="dedicated")),
        ("throughput_1_realm", lambda: qbo.throughput(realms=1)),
        ("throughput_4_realms", lambda: qbo.throughput(realms=4)),
        ("latency", qbo.latency),
        ("latency_fairness", qbo.latency_and_fairness),
        # One company's backlog of 3,000 orders through batch requests at 200 ms per item, 4 workers,
        # another shop's orders one a second meanwhile (`make bench BENCH=batch_drain`).
        ("batch_drain", qbo.batch_drain),
        # Metered reads per posted order (burst, one at a time minutes apart) and per idle company-day.
        ("qbo_reads", qbo.reads),
        ("qbo_reads_polling", lambda: qbo.reads(notified=False)),
    ]
    latest = RESULTS / "latest.json"
    # Running only some benchmarks updates those entries and keeps the others' last results.
    results: dict = json.loads(latest.read_text()) if only and latest.exists() else {}
    results.update({"started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()}})
    for name, run in plan:
        if only and name not in only:
            continue
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        results[name] = run()
        results[name]["bench_seconds"] = round(time.perf_counter() - started, 1)
        results[name]["measured_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        print(json.dumps(results[name], indent=2, default=str), flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2, default=str))
    print(f"results: {RESULTS / 'latest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
