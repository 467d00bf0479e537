// The Accounting page: Polaris web components + App Bridge inside the admin; the same code drives the
// native HTML that polaris-fallback.js leaves when Shopify's CDN is unreachable (dev page, tests).
(function () {
  "use strict";

  var P = window.EcomfluxPolaris || { native: true, upgrade: function (n) { return n; }, flush: function () {} };
  P.flush();

  var config = JSON.parse(document.getElementById("page-config").textContent);
  var params = new URLSearchParams(window.location.search);
  var token = params.get("id_token");
  var state = { status: null, settings: null, options: null, page: 1, pages: 1, filter: "" };
  var ID_FIELDS = ["deposit_account_id", "income_account_id", "refund_account_id", "shipping_item_id", "discount_account_id",
                   "tax_item_id", "default_customer_id", "class_id", "department_id"];
  var TEXT_FIELDS = ["tax_handling", "customer_matching", "doc_number_prefix", "sync_start_date"];
  var RADIO_FIELDS = ["document_type", "trigger"];
  var STATUS_LABELS = { posted: "Posted", pending: "Pending", flagged: "Flagged", failed: "Failed",
                        voided: "Voided", skipped: "Skipped" };
  var STATUS_TONES = { posted: "success", pending: "info", flagged: "warning", failed: "critical",
                       voided: "auto", skipped: "auto" };

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "text") node.textContent = attrs[key];
      else if (attrs[key] !== null && attrs[key] !== undefined) node.setAttribute(key, attrs[key]);
    });
    for (var i = 2; i < arguments.length; i++) {
      var child = arguments[i];
      if (child === null || child === undefined) continue;
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function show(node, visible) { node.hidden = !visible; }

  // Builds with Polaris tags; without Polaris the fallback turns them into native elements first.
  function ui() { return P.upgrade(el.apply(null, arguments)); }

  function isPolaris(node) { return !!node && node.tagName.indexOf("S-") === 0; }

  // Radio groups: native radios, or an s-choice-list whose `values` holds the choice.
  function choiceValue(name) {
    var list = document.querySelector('s-choice-list[name="' + name + '"]');
    if (list) return (list.values && list.values[0]) || null;
    var checked = document.querySelector('input[name="' + name + '"]:checked');
    return checked ? checked.value : null;
  }

  function setChoice(name, value) {
    var list = document.querySelector('s-choice-list[name="' + name + '"]');
    if (list) { list.values = value ? [value] : []; return; }
    document.querySelectorAll('input[name="' + name + '"]').forEach(function (input) {
      input.checked = input.value === value;
    });
  }

  // -- session tokens ------------------------------------------------------------------------------
  function tokenExpiresSoon(jwt) {
    try {
      var body = JSON.parse(atob(jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
      return !body.exp || body.exp * 1000 - Date.now() < 10000;
    } catch (e) { return true; }
  }

  function appBridge() {
    return window.shopify && typeof window.shopify.idToken === "function" ? window.shopify : null;
  }

  function freshToken(force) {
    var bridge = appBridge();
    if (bridge) return bridge.idToken().then(function (t) { token = t; return t; });
    if (!force && token && !tokenExpiresSoon(token)) return Promise.resolve(token);
    if (config.devTokenUrl) {
      return fetch(config.devTokenUrl, { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (body) { if (body && body.session_token) token = body.session_token; return token; });
    }
    return Promise.resolve(token);
  }

  function ApiError(status, body) {
    this.status = status;
    this.body = body || {};
    this.message = (body && body.error) || ("request failed (" + status + ")");
  }


  function api(method, path, body, retried) {
    return freshToken(false).then(function (t) {
      var init = { method: method, headers: { "Accept": "application/json" } };
      if (t) init.headers["Authorization"] = "Bearer " + t;
      if (body !== undefined) {
        init.headers["Content-Type"] = "application/json";
        init.body = JSON.stringify(body);
      }
      return fetch(path, init);
    }).then(function (resp) {
      if (resp.status === 401 && resp.headers.get("X-Shopify-Retry-Invalid-Session-Request") && !retried) {
        return freshToken(true).then(function () { return api(method, path, body, true); });
      }
      return resp.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        if (!resp.ok) {
          if (resp.status === 401) {
            data = { error: "Your session expired. Reopen EcomFlux from the Shopify admin." };
          }
          throw new ApiError(resp.status, data);
        }
        return data;
      });
    }, function (err) {
      if (err instanceof ApiError) throw err;
      throw new ApiError(0, { error: "EcomFlux could not be reached. Check your connection and try again." });
    });
  }


  function toast(message, isError) {
    if (window.shopify && window.shopify.toast && typeof window.shopify.toast.show === "function") {
      try { window.shopify.toast.show(message, { isError: !!isError }); } catch (e) { /* inline text still shows */ }
    }
  }

  function pageError(message) {
    var box = $("page-error");
    box.textContent = message || "";
    show(box, !!message);
  }

  function formatDate(iso) {
    if (!iso) return "never";
    var d = new Date(iso);
    if (isNaN(d.getTime())) return iso;
    return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  }

  // Amounts arrive with at most two decimals; show them the way QuickBooks does.
  function money2(value) { return Number(value).toFixed(2); }

  function formatMoney(amount, currency) {
    if (amount === null || amount === undefined) return "–";
    return (currency ? currency + " " : "") + amount;
  }

  // -- connection + summary ------------------------------------------------------------------------
  function renderStatus(status) {
    state.status = status;
    var qbo = status.qbo || {};
    var view = qbo.state || "not_connected";
    var card = $("connection");
    card.setAttribute("aria-busy", "false");
    card.querySelectorAll("[data-view]").forEach(function (node) { show(node, node.dataset.view === view); });
    $("company-name").textContent = qbo.company_name || "your QuickBooks company";
    $("reconnect-company").textContent = qbo.company_name || "QuickBooks";
    $("connected-since").textContent = qbo.connected_at ? "Connected " + formatDate(qbo.connected_at) : "";
    show($("reconnect-banner"), view === "reconnect_required");
    $("reconnect-reason").textContent = qbo.reason ? "Reason: " + qbo.reason : "";
    var counts = status.counts || {};
    ["posted", "pending", "flagged", "failed"].forEach(function (key) {
      $("count-" + key).textContent = String(counts[key] || 0);
    });
    $("last-sync").textContent = formatDate(status.last_sync_at);
    $("app").dataset.connection = view;
    document.dispatchEvent(new CustomEvent("ecomflux:status", { detail: status }));  // for the page's partials
  }

  function loadStatus() {
    return api("GET", "/api/status").then(renderStatus);
  }

  function connect(button, replace) {
    var error = $("connect-error");
    show(error, false);
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    api("POST", "/api/qbo/connect", replace ? { replace: true } : {}).then(function (body) {
      // Intuit refuses to render in a frame: leave the Shopify admin iframe at top level.
      window.open(body.authorize_url, "_top");
    }).catch(function (err) {
      error.textContent = "Could not start the QuickBooks connection: " + err.message;
      show(error, true);
      button.disabled = false;
      button.removeAttribute("aria-busy");
    });
  }

  function disconnect(trigger) {
    var dialog = $("disconnect-dialog");
    var confirmed = function () {
      trigger.disabled = true;
      api("POST", "/api/qbo/disconnect", {}).then(function () {
        toast("QuickBooks disconnected");
        state.options = null;
        return refreshAll();
      }).catch(function (err) {
        var error = $("connect-error");
        error.textContent = "Could not disconnect: " + err.message;
        show(error, true);
      }).then(function () { trigger.disabled = false; trigger.focus(); });
    };
    var bridge = window.shopify;
    var modal = $("disconnect-modal");
    if (bridge && bridge.modal && typeof bridge.modal.show === "function" && window.customElements &&
        window.customElements.get("ui-modal")) {
      // Inside the admin: App Bridge's modal; its buttons are proxied back as clicks on ours.
      var done = function (ok) {
        $("disconnect-modal-confirm").onclick = null;
        $("disconnect-modal-cancel").onclick = null;
        bridge.modal.hide("disconnect-modal");
        if (ok) confirmed(); else trigger.focus();
      };
      $("disconnect-modal-confirm").onclick = function () { done(true); };
      $("disconnect-modal-cancel").onclick = function () { done(false); };
      bridge.modal.show("disconnect-modal");
      return;
    }
    if (modal) modal.hidden = true;
    if (typeof dialog.showModal !== "function") {
      if (window.confirm("Disconnect QuickBooks? New orders will not be posted until you connect again.")) confirmed();
      return;
    }
    dialog.returnValue = "";
    dialog.onclose = function () {
      if (dialog.returnValue === "confirm") confirmed();
      else trigger.focus();
    };
    dialog.showModal();
  }

  // -- settings ------------------------------------------------------------------------------------
  var OPTION = P.native ? "option" : "s-option";

  function fillSelect(select, list, current) {
    var keep = current === null || current === undefined ? "" : String(current);
    select.textContent = "";
    select.appendChild(el(OPTION, { value: "", text: "Not set" }));
    var found = false;
    (list || []).forEach(function (opt) {
      var label = opt.name + (opt.type && select.dataset.options === "items" ? " (" + opt.type + ")" : "");
      select.appendChild(el(OPTION, { value: opt.id, text: label }));
      if (String(opt.id) === keep) found = true;
    });
    if (keep && !found) {
      // Keep a saved id visible even when the company lists are unavailable.
      select.appendChild(el(OPTION, { value: keep, text: "QuickBooks id " + keep }));
    }
    select.value = keep;
  }

  function renderSettings() {
    var settings = (state.settings && state.settings.settings) || {};
    document.querySelectorAll("[data-options]").forEach(function (select) {
      var list = state.options ? state.options[select.dataset.options] : null;
      fillSelect(select, list, settings[select.getAttribute("name")]);
    });
    RADIO_FIELDS.forEach(function (name) { setChoice(name, settings[name]); });
    TEXT_FIELDS.forEach(function (name) {
      var input = $(name);
      input.value = settings[name] === null || settings[name] === undefined ? "" : settings[name];
    });
    updateConditional();
    $("settings-fields").disabled = false;
    $("save-settings").disabled = false;
  }

  function updateConditional() {
    document.querySelectorAll("[data-show-when]").forEach(function (node) {
      var rule = node.dataset.showWhen.split("=");
      show(node, $(rule[0]).value === rule[1]);
    });
  }

  function optionsNote(message) {
    // The line keeps its height when empty: the settings below do not jump while the lists load.
    $("options-note").textContent = message || "";
  }

  function loadOptions() {
    var qbo = (state.status && state.status.qbo) || {};
    if (qbo.state !== "connected") {
      state.options = null;
      optionsNote(qbo.state === "reconnect_required"
        ? "Reconnect QuickBooks to choose accounts and items from your company."
        : "Connect QuickBooks to choose accounts and items from your company.");
      return Promise.resolve();
    }
    optionsNote("Loading accounts and items from " + (qbo.company_name || "QuickBooks") + "…");
    return api("GET", "/api/options").then(function (options) {
      state.options = options;
      optionsNote("");
    }).catch(function (err) {
      state.options = null;
      optionsNote("Accounts and items could not be loaded from QuickBooks (" + err.message + "). Saved choices are kept.");
    });
  }

  function loadSettings() {
    return api("GET", "/api/settings").then(function (body) { state.settings = body; });
  }

  function clearErrors(form) {
    form.querySelectorAll(".field-error").forEach(function (p) { p.textContent = ""; show(p, false); });
    form.querySelectorAll("[aria-invalid]").forEach(function (n) { n.removeAttribute("aria-invalid"); });
    form.querySelectorAll("[error]").forEach(function (n) { n.removeAttribute("error"); });
  }

  function showFieldErrors(errors, prefix) {
    var first = null;
    Object.keys(errors).forEach(function (name) {
      var p = $("err-" + (prefix || "") + name);
      if (!p) return;
      p.textContent = errors[name];
      show(p, true);
      var input = $(name) || document.querySelector('[name="' + name + '"]');
      var container = $("field-" + name);
      if (container && container.hidden) show(container, true);
      if (input) {
        input.setAttribute("aria-invalid", "true");
        if (isPolaris(input)) input.setAttribute("error", errors[name]);  // Polaris shows and associates it
        if (!first) first = input;
      }
    });
    return first;
  }

  function collectSettings() {
    var out = {};
    RADIO_FIELDS.forEach(function (name) {
      var value = choiceValue(name);
      if (value) out[name] = value;
    });
    ID_FIELDS.forEach(function (name) { out[name] = $(name).value || null; });
    TEXT_FIELDS.forEach(function (name) { out[name] = $(name).value; });
    if (!out.sync_start_date) out.sync_start_date = null;
    return out;
  }

  function saveSettings(event) {
    event.preventDefault();
    var form = $("settings-form");
    var status = $("settings-status");
    var summary = $("settings-summary");
    clearErrors(form);
    show(summary, false);
    status.textContent = "Saving…";
    $("save-settings").disabled = true;
    api("PUT", "/api/settings", collectSettings()).then(function (body) {
      state.settings = body;
      renderSettings();
      status.textContent = "Settings saved.";
      status.className = "status-text success";
      toast("Settings saved");
    }).catch(function (err) {
      status.textContent = "";
      var errors = (err.body && err.body.errors) || null;
      if (err.status === 422 && errors) {
        var names = Object.keys(errors);
        summary.textContent = "Fix " + names.length + (names.length === 1 ? " field" : " fields") + " below, then save again.";
        show(summary, true);
        var first = showFieldErrors(errors);
        (first || summary).focus();
      } else {
        summary.textContent = "Settings were not saved: " + err.message;
        show(summary, true);
        summary.focus();
      }
      toast("Settings not saved", true);
    }).then(function () { $("save-settings").disabled = false; });
  }

  // -- activity ------------------------------------------------------------------------------------
  function badge(status) {
    return el("s-badge", { tone: STATUS_TONES[status] || "auto", "class": "badge badge-" + status,
                           text: STATUS_LABELS[status] || status });
  }

  function activityRow(order) {
    var docType = order.document_label || "";
    var qbo = order.qbo_doc_number ? docType + " " + order.qbo_doc_number : (order.qbo_id ? docType + " #" + order.qbo_id : "–");
    var amount = el("s-table-cell", { "class": "num", "data-label": "Amount" }, formatMoney(order.shopify_total, order.currency));
    if (order.qbo_total && order.shopify_total && order.qbo_total !== order.shopify_total) {
      amount.appendChild(el("span", { "class": "mismatch", text: "QuickBooks: " + formatMoney(order.qbo_total, order.currency) }));
    }
    var details = order.reason || (order.status === "posted" ? "Posted " + formatDate(order.posted_at) : "") ||
      (order.ledger_status === "waiting_reconnect" ? "Waiting for QuickBooks to be reconnected" : "");
    if (order.error_code) details += " (QuickBooks error " + order.error_code + (order.error_element ? ", " + order.error_element : "") + ")";
    var actions = el("s-table-cell", { "class": "actions", "data-label": "" });
    if (order.can_retry) {
      actions.appendChild(el("s-button", { type: "button", "class": "btn-small", "data-action": "retry",
                                           "data-order-id": order.order_id,
                                           "accessibility-label": "Retry order " + (order.order_name || order.order_id),
                                           text: "Retry" }));
    }
    return ui("s-table-row", { "data-order-id": order.order_id, "data-status": order.status },
      el("s-table-cell", { "data-row-header": "", "data-label": "Order" }, order.order_name || ("Order " + order.order_id),
         order.kind && order.kind !== "order" ? el("span", { "class": "subtle kind", text: " " + order.kind }) : null),
      el("s-table-cell", { "data-label": "Status" }, badge(order.status)),
      el("s-table-cell", { "data-label": "QuickBooks" }, qbo),
      amount,
      el("s-table-cell", { "class": "details", "data-label": "Details" }, details || "–"),
      actions);
  }

  function loadActivity() {
    var loading = $("activity-loading");
    show(loading, true);
    show($("activity-error"), false);
    var query = "?page=" + state.page + "&per_page=10" + (state.filter ? "&status=" + encodeURIComponent(state.filter) : "");
    return api("GET", "/api/orders" + query).then(function (body) {
      state.pages = body.pages;
      var rows = $("activity-rows");
      rows.textContent = "";
      body.orders.forEach(function (order) { rows.appendChild(activityRow(order)); });
      show($("activity-table"), body.orders.length > 0);
      var empty = $("activity-empty");
      empty.querySelector("h3").textContent = state.filter ? "No " + (STATUS_LABELS[state.filter] || state.filter).toLowerCase() + " orders" : "No orders synced yet";
      show(empty, body.orders.length === 0);
      show($("activity-pager"), body.pages > 1);
      $("page-label").textContent = "Page " + body.page + " of " + body.pages;
      document.querySelector('[data-action="prev-page"]').disabled = body.page <= 1;
      document.querySelector('[data-action="next-page"]').disabled = body.page >= body.pages;
      fillPreviewOrders(body.orders);
    }).catch(function (err) {
      var box = $("activity-error");
      box.textContent = "Activity could not be loaded: " + err.message;
      show(box, true);
      show($("activity-table"), false);
    }).then(function () { show(loading, false); });
  }

  function retry(button) {
    var orderId = button.dataset.orderId;
    button.disabled = true;
    button.textContent = "Retrying…";
    api("POST", "/api/orders/" + encodeURIComponent(orderId) + "/retry", {}).then(function () {
      button.textContent = "Queued";
      toast("Order queued for another try");
      window.setTimeout(function () { loadActivity(); loadStatus(); }, 1500);
    }).catch(function (err) {
      button.disabled = false;
      button.textContent = "Retry";
      pageError("Retry failed: " + err.message);
    });
  }

  // -- preview -------------------------------------------------------------------------------------
  function fillPreviewOrders(orders) {
    var select = $("preview-order-id");
    var current = select.value;
    var seen = {};
    select.querySelectorAll("[data-order]").forEach(function (o) { seen[o.value] = true; });
    orders.forEach(function (order) {
      if (order.kind !== "order" || seen[order.order_id]) return;
      seen[order.order_id] = true;
      select.appendChild(el(OPTION, { value: order.order_id, "data-order": "1",
                                        text: (order.order_name || order.order_id) + " · " + (STATUS_LABELS[order.status] || order.status) }));
    });
    select.value = current;
  }

  function previewLines(document_) {
    var tbody = $("preview-lines");
    tbody.textContent = "";
    (document_.Line || []).forEach(function (line) {
      var detail = line.SalesItemLineDetail || line.DiscountLineDetail || {};
      var isDiscount = line.DetailType === "DiscountLineDetail";
      var label = line.Description || (line.DetailType === "SubTotalLineDetail" ? "Subtotal" : line.DetailType);
      if (isDiscount && !line.Description) label = "Discount";
      tbody.appendChild(ui("s-table-row", { "class": isDiscount ? "discount" : null },
        el("s-table-cell", {}, label || ""),
        el("s-table-cell", { "class": "num" }, detail.Qty !== undefined ? String(detail.Qty) : ""),
        el("s-table-cell", { "class": "num" }, line.Amount !== undefined ? (isDiscount ? "−" : "") + money2(line.Amount) : "")));
    });
    var tax = document_.TxnTaxDetail && document_.TxnTaxDetail.TotalTax;
    if (tax !== undefined) {
      tbody.appendChild(ui("s-table-row", {}, el("s-table-cell", {}, "Tax"), el("s-table-cell", {}),
                           el("s-table-cell", { "class": "num" }, money2(tax))));
    }
  }

  function runPreview(event) {
    event.preventDefault();
    var form = $("preview-form");
    var status = $("preview-status");
    clearErrors(form);
    var payload = {};
    var orderId = $("preview-order-id").value;
    var text = $("preview-order-json").value.trim();
    if (text) payload.order_json = text;
    else if (orderId) payload.order_id = orderId;
    else {
      showFieldErrors({ order: "Choose an order or paste an order's JSON." }, "preview-");
      $("preview-order-id").focus();
      return;
    }
    status.textContent = "Building preview…";
    $("preview-submit").disabled = true;
    api("POST", "/api/preview", payload).then(function (result) {
      status.textContent = "";
      var box = $("preview-result");
      if (result.error) {
        showFieldErrors({ order: result.error + (result.field ? " (" + result.field + ")" : "") }, "preview-");
        show(box, false);
        return;
      }
      var summary = result.summary || {};
      var name = result.document_label || "";
      $("preview-result-title").textContent = name + " " + (summary.doc_number || "") + " · " + (summary.currency || "") + " " + (summary.document_total || "");
      var balance = result.balance || {};
      var balanceText = result.ok ? "Balances with Shopify's total to the cent." :
        "Does not balance: " + (balance.reason || JSON.stringify(balance)) + ". This order would be flagged, not posted.";
      var p = $("preview-balance");
      p.textContent = balanceText;
      p.className = result.ok ? "success" : "notice notice-warning";
      previewLines(result.document || {});
      $("preview-json").textContent = result.document_json || JSON.stringify(result.document, null, 2);
      show(box, true);
      box.focus();
    }).catch(function (err) {
      status.textContent = "";
      var errors = err.body && err.body.errors;
      if (errors) {
        var mapped = {};
        Object.keys(errors).forEach(function (k) { mapped[k === "order_id" ? "order_id" : "order"] = errors[k]; });
        showFieldErrors(mapped, "preview-");
      } else {
        showFieldErrors({ order: "Preview failed: " + err.message }, "preview-");
      }
    }).then(function () { $("preview-submit").disabled = false; });
  }

  // -- wiring --------------------------------------------------------------------------------------
  // -- reconciliation and history import -------------------------------------------------
  var DIFF_LABELS = { missing_in_qbo: "Missing in QuickBooks", missing_refund: "Refund missing in QuickBooks",
    deleted_in_qbo: "Deleted in QuickBooks", duplicated_in_qbo: "Duplicated in QuickBooks", mismatch: "Amounts differ" };
  var polls = {};

  function poll(name, fn) {
    clearTimeout(polls[name]);
    polls[name] = setTimeout(fn, 2000);
  }

  function renderReconciliation(run) {
    state.reconciliation = run;
    var busy = run.status === "queued" || run.status === "running";
    $("reconcile-status").textContent = busy
      ? "Checking " + run.start + " to " + run.end + "…"
      : (run.status === "done" ? "Checked " + run.start + " to " + run.end + "." : "The check " + run.status + ".");
    if (busy) { poll("reconcile", function () { loadReconciliation(run.id); }); }
    var report = run.report || {};
    var diffs = report.differences || [];
    show($("reconcile-result"), run.status === "done");
    var counts = Object.keys(report.counts || {}).filter(function (k) { return report.counts[k]; })
      .map(function (k) { return (DIFF_LABELS[k] || k) + ": " + report.counts[k]; });
    $("reconcile-counts").textContent = diffs.length ? counts.join(" · ") : "No differences: QuickBooks matches Shopify.";
    var body = $("reconcile-rows");
    body.textContent = "";
    diffs.forEach(function (d) {
      body.appendChild(ui("s-table-row", null, el("s-table-cell", { text: d.order_name || d.order_id || "" }),
        el("s-table-cell", { text: (DIFF_LABELS[d.kind] || d.kind) + (d.field ? " (" + d.field + ")" : "") }),
        el("s-table-cell", { "class": "num", text: d.shopify === undefined || d.shopify === null ? "" : String(d.shopify) }),
        el("s-table-cell", { "class": "num", text: d.qbo === undefined || d.qbo === null ? "" : String(d.qbo) })));
    });
    show($("post-missing"), diffs.some(function (d) { return d.kind === "missing_in_qbo" || d.kind === "missing_refund"; }));
  }

  function loadReconciliation(id) {
    return api("GET", "/api/reconciliation/" + id).then(renderReconciliation)
      .catch(function (err) { $("reconcile-status").textContent = err.message; });
  }

  function startReconciliation(body) {
    $("reconcile-status").textContent = "Starting the check…";
    return api("POST", "/api/reconciliation", body).then(renderReconciliation)
      .catch(function (err) { $("reconcile-status").textContent = err.message; });
  }

  function downloadCsv() {
    var run = state.reconciliation;
    if (!run) return;
    freshToken(false).then(function (t) {
      return fetch("/api/reconciliation/" + run.id + ".csv", { headers: { "Authorization": "Bearer " + t } });
    }).then(function (resp) {
      if (!resp.ok) throw new Error("download failed (" + resp.status + ")");
      return resp.blob();
    }).then(function (blob) {
      var link = el("a", { href: URL.createObjectURL(blob), download: "reconciliation-" + run.start + "-" + run.end + ".csv" });
      document.body.appendChild(link);
      link.click();
      link.remove();
    }).catch(function (err) { $("reconcile-status").textContent = err.message; });
  }

  function postMissing(button) {
    var run = state.reconciliation;
    if (!run || !window.confirm("Post the orders missing in QuickBooks now? Each is posted once; nothing is duplicated.")) return;
    button.disabled = true;
    api("POST", "/api/reconciliation/" + run.id + "/post-missing").then(function (data) {
      $("reconcile-status").textContent = "Posting " + ((data && data.queued) || "the") + " missing orders. Check again in a moment.";
      toast("Missing orders queued");
      loadActivity();
    }).catch(function (err) { $("reconcile-status").textContent = err.message; })
      .then(function () { button.disabled = false; });
  }

  function renderBackfill(run) {
    if (!run) { $("backfill-status").textContent = "No import yet."; return; }
    var text = "Import since " + run.since + ": " + (run.stalled ? "stopped" : run.status) + " — " + run.seen + " orders read, " + run.posted +
      " posted, " + run.failed + " failed." + (run.error ? " " + run.error : "");
    $("backfill-status").textContent = text;
    document.dispatchEvent(new CustomEvent("ecomflux:backfill", { detail: run }));
    if (run.status === "running" && !run.stalled) { poll("backfill", loadBackfill); }
  }

  function loadBackfill() {
    return api("GET", "/api/backfill").then(function (data) { renderBackfill(data && data.current); })
      .catch(function (err) { $("backfill-status").textContent = err.message; });
  }

  function startBackfill(event) {
    event.preventDefault();
    var since = $("backfill-since").value;
    if (!since) { $("backfill-status").textContent = "Choose the date to import from."; return; }
    api("POST", "/api/backfill", { since: since }).then(renderBackfill).catch(function (err) {
      $("backfill-status").textContent = err.message;
      if (err.body && err.body.backfill) renderBackfill(err.body.backfill);
    });
  }

  function refreshAll() {
    pageError("");
    return loadStatus()
      .then(function () { return Promise.all([loadSettings(), loadOptions()]); })
      .then(renderSettings)
      .then(loadActivity)
      .then(function () { if (state.status && state.status.installed !== false) return loadBackfill(); })
      .catch(function (err) {
        pageError(err.message);
        var card = $("connection");
        card.setAttribute("aria-busy", "false");
        card.querySelector('[data-view="loading"]').textContent = "Could not load the connection.";
      })
      .then(function () { $("app").dataset.ready = "true"; });
  }

  // For the cards' own scripts (static/payouts.js, static/taxcodes.js, static/embedded/*.js): one session token.
  window.EcomFluxPage = { api: api, toast: toast, loadBackfill: loadBackfill, loadStatus: loadStatus };

  document.addEventListener("click", function (event) {
    var target = event.target.closest("[data-action]");
    if (!target) return;
    switch (target.dataset.action) {
      case "connect": connect(target, false); break;
      case "replace-company": connect(target, true); break;
      case "disconnect": disconnect(target); break;
      case "retry": retry(target); break;
      case "refresh-activity": loadActivity(); loadStatus(); break;
      case "prev-page": if (state.page > 1) { state.page -= 1; loadActivity(); } break;
      case "next-page": if (state.page < state.pages) { state.page += 1; loadActivity(); } break;
      case "sample-week": startReconciliation({ sample_week: true }); break;
      case "download-csv": downloadCsv(); break;
      case "post-missing": postMissing(target); break;
      default: break;
    }
  });
  $("status-filter").addEventListener("change", function (event) {
    state.filter = event.target.value;
    state.page = 1;
    loadActivity();
  });
  $("tax_handling").addEventListener("change", updateConditional);
  $("settings-form").addEventListener("submit", saveSettings);
  // App Bridge's save bar "Discard" resets the form: show the saved settings again.
  $("settings-form").addEventListener("reset", function () { window.setTimeout(renderSettings, 0); });
  $("preview-form").addEventListener("submit", runPreview);
  $("backfill-form").addEventListener("submit", startBackfill);
  $("reconcile-form").addEventListener("submit", function (event) {
    event.preventDefault();
    startReconciliation({ start: $("reconcile-start").value, end: $("reconcile-end").value });
  });

  // Coming back from Intuit: the callback may name what happened (e.g. qbo_error=access_denied).
  var qboError = params.get("qbo_error");
  var QBO_ERRORS = {
    access_denied: "QuickBooks was not connected: the connection was declined at Intuit. You can try again.",
    invalid_state: "That QuickBooks sign-in link had expired. Connect again.",
    different_company: "You chose a different QuickBooks company than the one linked to this shop. " +
      "Replace it only if orders should go to the new company from now on."
  };
  if (qboError) {
    var box = $("connect-error");
    box.textContent = QBO_ERRORS[qboError] || ("QuickBooks was not connected (" + qboError + "). You can try again.");
    show(box, true);
    show($("replace-company"), qboError === "different_company");
  } else if (params.get("qbo") === "connected") {
    toast("QuickBooks connected");
  }

  // A card's script that not every shop needs (payouts: Shopify Payments shops) is loaded when the card
  // nears the viewport, so the page a shop first sees carries only what it uses.
  document.querySelectorAll("[data-lazy-script]").forEach(function (card) {
    function load() {
      var script = document.createElement("script");
      script.src = card.getAttribute("data-lazy-script");
      document.head.appendChild(script);
    }
    if (!window.IntersectionObserver) { load(); return; }
    var seen = new IntersectionObserver(function (entries) {
      if (entries.some(function (e) { return e.isIntersecting; })) { seen.disconnect(); load(); }
    }, { rootMargin: "200px" });
    seen.observe(card);
  });

  refreshAll();
})();
