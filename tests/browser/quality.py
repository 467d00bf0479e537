"""Accessibility (axe-core) and Web Vitals measurements for the browser tests, recorded beside the screenshots."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from tests.browser.embedded_fixtures import SCREENSHOTS

BLOCKING_IMPACTS = ("serious", "critical")
# Built for Shopify: https://shopify.dev/docs/apps/launch/built-for-shopify/requirements (75th percentile).
LCP_BUDGET_MS = 2500
CLS_BUDGET = 0.1
INP_BUDGET_MS = 200
CPU_THROTTLE = 4
# First-party bytes the Accounting page loads (uncompressed, as served): small enough that parsing them
# stays a small share of a throttled load. The cards that do not apply to every shop keep their scripts
# off its page (tax codes: companies outside the US; payouts: loaded when the card nears the viewport).
JS_BUDGET_BYTES = 64 * 1024
CSS_BUDGET_BYTES = 16 * 1024

_lock = threading.Lock()


def record(filename: str, key: str, value: dict) -> Path:
    """Merge one entry into a JSON results file beside the screenshots (sorted, stable for diffs)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / filename
    with _lock:
        data = json.loads(path.read_text()) if path.exists() else {}
        data[key] = value
        path.write_text(json.dumps(dict(sorted(data.items())), indent=2) + "\n")
    return path


# -- accessibility ---------------------------------------------------------------------------------
def check_a11y(page, state: str) -> list[dict]:
    """Run axe-core (from the axe-playwright-python package) on the page as it is; record the result
    and fail on any serious or critical violation, naming the rule and the elements."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page, options={"resultTypes": ["violations"]}).response
    violations = results.get("violations", [])
    blocking = [v for v in violations if v.get("impact") in BLOCKING_IMPACTS]
    record("axe.json", state, {
        "url_path": page.url.split("?")[0].split("//", 1)[-1].split("/", 1)[-1],
        "axe_version": (results.get("testEngine") or {}).get("version"),
        "violations": {v["id"]: {"impact": v.get("impact"), "nodes": len(v.get("nodes", []))} for v in violations},
        "serious_or_critical": len(blocking),
    })
    assert not blocking, "axe: " + "; ".join(
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes'][:3]]}" for v in blocking)
    return violations


def tab_to(page, selector: str, limit: int = 120, shift: bool = False) -> None:
    """Press Tab until the focused element matches the selector (keyboard only; fails if unreachable)."""
    key = "Shift+Tab" if shift else "Tab"
    for _ in range(limit):
        if page.evaluate("s => !!document.activeElement && document.activeElement.matches(s)", selector):
            return
        page.keyboard.press(key)
    raise AssertionError(f"{selector} is not reachable with {key} in {limit} presses")


# -- Web Vitals ------------------------------------------------------------------------------------
# Installed before any page script: PerformanceObservers as the web-vitals library defines the metrics.
# LCP: the last largest-contentful-paint entry; CLS: the largest session window of layout shifts
# without recent input (gaps < 1 s, windows <= 5 s); INP: the longest interaction (event entries
# grouped by interactionId; with fewer than 50 interactions the worst one counts).
VITALS_INIT = """
(() => {
  const v = window.__vitals = {lcp: null, lcpElement: null, cls: 0, firstInput: null, interactions: {}};
  let session = 0, first = 0, last = 0;
  const observers = [];
  const observe = (type, fn, extra) => {
    try {
      const o = new PerformanceObserver(list => list.getEntries().forEach(fn));
      o.observe(Object.assign({type, buffered: true}, extra || {}));
      observers.push([o, fn]);
    } catch (e) { v.unsupported = (v.unsupported || []).concat([type]); }
  };
  // Entries not yet delivered (observers are called in a later, low-priority task): take them now.
  v.flush = () => observers.forEach(([o, fn]) => o.takeRecords().forEach(fn));
  observe('largest-contentful-paint', e => {
    v.lcp = e.startTime;
    const el = e.element;
    v.lcpElement = el ? (el.id ? '#' + el.id : el.tagName.toLowerCase() + ': ' + (el.textContent || '').trim().slice(0, 40)) : null;
    v.lcpSize = e.size;
  });
  observe('layout-shift', e => {
    if (e.hadRecentInput) return;
    if (session && (e.startTime - last > 1000 || e.startTime - first > 5000)) session = 0;
    if (!session) first = e.startTime;
    session += e.value; last = e.startTime;
    v.cls = Math.max(v.cls, session);
  });
  observe('first-input', e => { v.firstInput = {name: e.name, delay: e.processingStart - e.startTime, duration: e.duration}; });
  observe('event', e => {
    if (!e.interactionId) return;
    const prev = v.interactions[e.interactionId];
    if (!prev || e.duration > prev.duration) v.interactions[e.interactionId] = {name: e.name, duration: e.duration};
  }, {durationThreshold: 16});
})();
"""


def start_vitals(page) -> object:
    """Observe Web Vitals from the next navigation on, with the CPU slowed CPU_THROTTLE times."""
    page.add_init_script(VITALS_INIT)
    cdp = page.context.new_cdp_session(page)
    cdp.send("Emulation.setCPUThrottlingRate", {"rate": CPU_THROTTLE})
    return cdp


def read_vitals(page) -> dict:
    """LCP, CLS and INP so far, plus what the page loaded from its own origin (bytes by kind)."""
    page.evaluate("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")
    raw = page.evaluate("""() => {
      const v = window.__vitals;
      v.flush();
      const own = performance.getEntriesByType('resource').filter(r => r.name.startsWith(location.origin + '/static/'));
      const bytes = kind => own.filter(r => r.name.split('?')[0].endsWith(kind))
                               .reduce((n, r) => n + (r.decodedBodySize || r.encodedBodySize || 0), 0);
      const interactions = Object.values(v.interactions);
      return {lcp_ms: v.lcp, lcp_element: v.lcpElement, cls: v.cls, first_input: v.firstInput,
              interactions: interactions.length,
              inp_ms: interactions.reduce((m, i) => Math.max(m, i.duration), 0),
              unsupported: v.unsupported || [],
              js_bytes: bytes('.js'), css_bytes: bytes('.css'),
              js_files: own.filter(r => r.name.split('?')[0].endsWith('.js')).map(r => r.name.replace(location.origin, ''))};
    }""")
    for key in ("lcp_ms", "inp_ms"):
        if raw[key] is not None:
            raw[key] = round(raw[key], 1)
    raw["cls"] = round(raw["cls"], 4)
    return raw


RUNS = 4  # each flow is measured this many times; the 75th percentile is held to the budget


def p75(samples: list[float]) -> float:
    """Nearest-rank 75th percentile, as Built for Shopify reads its field data."""
    ordered = sorted(samples)
    return ordered[max(0, -(-len(ordered) * 3 // 4) - 1)]


def assert_budgets(flow: str, runs: list[dict], interactive: bool) -> dict:
    """Record every run of the flow and hold the 75th percentile of each metric to the budgets (one run
    disturbed by the machine's other work does not decide, as one slow visit does not in the field)."""
    summary = {
        "runs": len(runs),
        "lcp_ms": p75([r["lcp_ms"] for r in runs if r["lcp_ms"] is not None]) if all(
            r["lcp_ms"] is not None for r in runs) else None,
        "cls": p75([r["cls"] for r in runs]),
        "inp_ms": p75([r["inp_ms"] for r in runs]) if interactive else None,
        "js_bytes": max(r["js_bytes"] for r in runs),
        "css_bytes": max(r["css_bytes"] for r in runs),
        "lcp_element": runs[-1]["lcp_element"],
        "js_files": runs[-1]["js_files"],
        "cpu_throttle": CPU_THROTTLE,
        "budgets": {"lcp_ms": LCP_BUDGET_MS, "cls": CLS_BUDGET, "inp_ms": INP_BUDGET_MS,
                    "js_bytes": JS_BUDGET_BYTES, "css_bytes": CSS_BUDGET_BYTES},
        "samples": [{k: r[k] for k in ("lcp_ms", "cls", "inp_ms", "interactions")} for r in runs],
    }
    record("web-vitals.json", flow, summary)
    for run in runs:
        assert not run["unsupported"], f"this chromium cannot observe {run['unsupported']}"
        if interactive:
            # The first input is always reported (no duration threshold): proof the interactions were seen.
            assert run["first_input"] is not None, run
    assert summary["lcp_ms"] is not None and summary["lcp_ms"] <= LCP_BUDGET_MS, summary
    assert summary["cls"] <= CLS_BUDGET, summary
    if interactive:
        assert summary["inp_ms"] <= INP_BUDGET_MS, summary
    assert 0 < summary["js_bytes"] <= JS_BUDGET_BYTES, summary
    assert 0 < summary["css_bytes"] <= CSS_BUDGET_BYTES, summary
    return summary
