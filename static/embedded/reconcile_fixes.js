// Fix buttons for the latest reconciliation (templates/partials/reconcile_fixes.html); plain DOM + fetch.
(function () {
  "use strict";

  var config = JSON.parse(document.getElementById("page-config").textContent);
  var token = new URLSearchParams(window.location.search).get("id_token");
  var LABELS = { missing_in_qbo: "Missing in QuickBooks", missing_refund: "Refund missing",
                 deleted_in_qbo: "Deleted in QuickBooks", mismatch: "Total differs" };
  var ACTIONS = { missing_in_qbo: "Post order", missing_refund: "Post refund", deleted_in_qbo: "Post again",
                  mismatch: "Post adjustment" };
  var runId = null;
  var waiting = {};
  var timer = null;

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function sessionToken() {
    if (window.shopify && typeof window.shopify.idToken === "function") return window.shopify.idToken();
    if (config.devTokenUrl) {
      return fetch(config.devTokenUrl, { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (body) { return (body && body.session_token) || token; });
    }
    return Promise.resolve(token);
  }

  function api(method, path, body) {
    return sessionToken().then(function (t) {
      var init = { method: method, headers: { "Accept": "application/json", "Authorization": "Bearer " + t } };
      if (body !== undefined) {
        init.headers["Content-Type"] = "application/json";
        init.body = JSON.stringify(body);
      }
      return fetch(path, init);
    }).then(function (resp) {
      return resp.json().catch(function () { return {}; }).then(function (data) {
        if (!resp.ok) throw new Error((data && data.error) || "request failed (" + resp.status + ")");
        return data;
      });
    });
  }

  function describe(diff) {
    if (diff.kind === "mismatch") return LABELS.mismatch + ": Shopify " + diff.shopify + ", QuickBooks " + diff.qbo;
    return (LABELS[diff.kind] || diff.kind) + (diff.refund_id ? " (refund " + diff.refund_id + ")" : "");
  }

  function render(run) {
    var section = $("reconcile-fixes");
    var diffs = ((run && run.report) || {}).differences || [];
    var rows = $("reconcile-fix-rows");
    rows.textContent = "";
    var any = false;
    diffs.forEach(function (diff, index) {
      if (!diff.fixable) return;
      any = true;
      var cell = el("td");
      if (diff.fix) {
        cell.appendChild(el("span", { "class": "fix-result", "data-status": diff.fix.status },
          (diff.fix.status === "posted" ? "Fixed: " : diff.fix.status === "skipped_duplicate" ? "Already fixed: "
            : "Not fixed: ") + (diff.fix.detail || "")));
        delete waiting[index];
      } else {
        var button = el("button", { type: "button", "class": "btn", "data-fix-index": String(index) },
          waiting[index] ? "Fixing…" : (ACTIONS[diff.kind] || "Fix"));
        button.disabled = !!waiting[index];
        cell.appendChild(button);
      }
      var tr = el("tr");
      tr.appendChild(el("td", {}, diff.order_name || diff.order_id || ""));
      tr.appendChild(el("td", {}, describe(diff)));
      tr.appendChild(cell);
      rows.appendChild(tr);
    });
    section.hidden = !any;
    if (Object.keys(waiting).length) {
      clearTimeout(timer);
      timer = setTimeout(load, 2000);
    }
  }

  function load() {
    return api("GET", "/api/reconciliation/latest").then(function (run) {
      runId = run && run.status === "done" ? run.id : null;
      render(runId ? run : null);
    }).catch(function () { /* not connected or no run yet: nothing to fix */ });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-fix-index]");
    if (!button || runId === null) return;
    var index = Number(button.getAttribute("data-fix-index"));
    waiting[index] = true;
    button.disabled = true;
    button.textContent = "Fixing…";
    $("reconcile-fix-status").textContent = "";
    api("POST", "/api/reconciliation/" + runId + "/fix", { index: index }).then(load).catch(function (err) {
      delete waiting[index];
      $("reconcile-fix-status").textContent = err.message;
      load();
    });
  });

  // A check finished on the page (its result area changed and shows): load its fixes, once per burst
  // of changes. Nothing is asked of the API before that.
  var watched = $("reconcile-result");
  var pending = null;
  if (watched && window.MutationObserver) {
    new MutationObserver(function () {
      if (watched.hidden) return;
      clearTimeout(pending);
      pending = setTimeout(load, 300);
    }).observe(watched, { attributes: true, childList: true, subtree: true });
  }
})();
