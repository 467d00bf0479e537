// The Payouts card: list payouts with their Deposits, "Sync payouts", and the payout account settings.
(function () {
  "use strict";

  var card = document.getElementById("payouts");
  if (!card) return;
  var config = JSON.parse((document.getElementById("page-config") || {}).textContent || "{}");
  var token = new URLSearchParams(window.location.search).get("id_token");
  var FIELDS = ["payout_clearing_account_id", "payout_bank_account_id", "payout_fee_account_id", "payouts_start_date"];
  var STATUS = { PAID: "Paid", FAILED: "Failed", CANCELED: "Cancelled", IN_TRANSIT: "In transit",
                 SCHEDULED: "Scheduled" };

  function $(id) { return document.getElementById(id); }
  function show(node, visible) { node.hidden = !visible; }
  function text(node, value) { node.textContent = value || ""; }

  function expiresSoon(jwt) {
    try {
      var body = JSON.parse(atob(jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
      return !body.exp || body.exp * 1000 - Date.now() < 10000;
    } catch (e) { return true; }
  }

  // Same session-token rules as the rest of the page: App Bridge when present, else the URL's (dev: refreshed).
  function freshToken(force) {
    if (window.shopify && typeof window.shopify.idToken === "function") {
      return window.shopify.idToken().then(function (t) { token = t; return t; });
    }
    if (!force && token && !expiresSoon(token)) return Promise.resolve(token);
    if (config.devTokenUrl) {
      return fetch(config.devTokenUrl, { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (b) { if (b && b.session_token) token = b.session_token; return token; });
    }
    return Promise.resolve(token);
  }

  function api(method, path, body, retried) {
    if (window.EcomFluxPage && window.EcomFluxPage.api) {
      return window.EcomFluxPage.api(method, path, body).catch(function (err) {
        var e = new Error(err.message); e.body = err.body || {}; e.status = err.status; throw e;
      });
    }
    return freshToken(false).then(function (t) {
      var init = { method: method, headers: { "Accept": "application/json" } };
      if (t) init.headers.Authorization = "Bearer " + t;
      if (body !== undefined) { init.headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
      return fetch(path, init);
    }).then(function (resp) {
      if (resp.status === 401 && !retried) return freshToken(true).then(function () { return api(method, path, body, true); });
      return resp.text().then(function (raw) {
        var data = null;
        try { data = raw ? JSON.parse(raw) : null; } catch (e) { data = null; }
        if (!resp.ok) { var err = new Error((data && data.error) || ("request failed (" + resp.status + ")")); err.body = data || {}; err.status = resp.status; throw err; }
        return data;
      });
    });
  }

  function amount(value, currency) {
    if (value === null || value === undefined) return "–";
    return (currency ? currency + " " : "") + Number(value).toFixed(2);
  }

  function cell(value, cls) {
    var td = document.createElement("td");
    if (cls) td.className = cls;
    td.textContent = value;
    return td;
  }

  function badge(label, tone) {
    var span = document.createElement("span");
    span.className = "badge badge-" + tone;
    span.textContent = label;
    return span;
  }

  function renderRows(payouts) {
    var body = $("payouts-rows");
    body.textContent = "";
    payouts.forEach(function (p) {
      var tr = document.createElement("tr");
      tr.setAttribute("data-payout", p.payout_id);
      tr.appendChild(cell(p.date || "–"));
      tr.appendChild(cell(amount(p.net, p.currency), "num"));
      tr.appendChild(cell(amount(p.fees, p.currency), "num"));
      var status = document.createElement("td");
      status.appendChild(badge(STATUS[p.status] || p.status, p.status === "PAID" ? "success" :
                               (p.status === "FAILED" || p.status === "CANCELED") ? "critical" : "info"));
      tr.appendChild(status);
      var deposit;
      if (p.deposit) deposit = "Deposit " + p.deposit.qbo_id + " · " + amount(p.deposit.total, p.currency);
      else if (p.ledger_status === "voided") deposit = "Deposit removed: " + (p.reason || "payout failed");
      else if (p.status === "FAILED" || p.status === "CANCELED") deposit = "Nothing posted (not paid out)";
      else if (p.reason) deposit = p.reason;
      else deposit = p.status === "PAID" ? "Not posted yet" : "Posted once paid";
      tr.appendChild(cell(deposit));
      var match = document.createElement("td");
      if (p.match && p.match.matches) match.appendChild(badge("Matches bank", "success"));
      else if (p.match) {
        match.appendChild(badge("Differs by " + amount(p.match.difference, p.currency), "warning"));
        if (p.match.cause) match.appendChild(document.createTextNode(" " + p.match.cause));
      } else match.textContent = "–";
      tr.appendChild(match);
      body.appendChild(tr);
    });
  }

  function renderClearing(clearing, currency) {
    var node = $("payouts-clearing");
    if (!clearing) { show(node, false); return; }
    var waiting = clearing.payouts_not_deposited || [];
    text(node, waiting.length
      ? "In clearing, not yet in a Deposit: " + amount(clearing.in_transit, currency) + " across " + waiting.length +
        " payout" + (waiting.length === 1 ? "" : "s") + " (scheduled, in transit, or waiting for their orders)."
      : "Clearing is explained: every paid-out order's money has left it; what remains is paid but not yet paid out.");
    show(node, true);
  }

  function load() {
    return api("GET", "/api/payouts").then(function (data) {
      show($("payouts-loading"), false);
      show($("payouts-error"), false);
      var payouts = data.payouts || [];
      show($("payouts-empty"), payouts.length === 0);
      show($("payouts-table"), payouts.length > 0);
      renderRows(payouts);
      renderClearing(data.clearing, payouts.length ? payouts[0].currency : "");
      fillSettings(data.settings || {});
      return data;
    }).catch(function (err) {
      show($("payouts-loading"), false);
      text($("payouts-error"), err.message);
      show($("payouts-error"), true);
    });
  }

  var chosen = {};
  var justCreated = {};
  function fillSettings(settings) {
    chosen = settings;
    FIELDS.forEach(function (name) {
      var input = $(name);
      if (input && input.tagName === "INPUT") input.value = settings[name] || "";
      if (input && input.tagName === "SELECT" && settings[name]) input.value = settings[name];
    });
  }

  function loadOptions() {
    return api("GET", "/api/options").then(function (options) {
      ["payout_clearing_account_id", "payout_bank_account_id", "payout_fee_account_id"].forEach(function (name) {
        var select = $(name);
        var types = (select.getAttribute("data-types") || "").split(",");
        var current = select.value || chosen[name];  // keep what the admin picked but has not saved
        select.textContent = "";
        var none = document.createElement("option");
        none.value = "";
        none.textContent = "Not set";
        select.appendChild(none);
        (options.accounts || []).forEach(function (a) {
          if (types.indexOf(a.type) < 0) return;
          if (name === "payout_bank_account_id" && a.subtype === "UndepositedFunds") return;
          var opt = document.createElement("option");
          opt.value = a.id;
          opt.textContent = a.name + " (" + a.type + ")";
          select.appendChild(opt);
        });
        if (name in justCreated) current = justCreated[name];
        if (current) select.value = current;
      });
      justCreated = {};
      $("payout-settings-fields").disabled = false;
      $("save-payout-settings").disabled = false;
    }).catch(function (err) {
      text($("payout-settings-status"), "QuickBooks accounts could not be loaded: " + err.message);
    });
  }

  function clearErrors() {
    FIELDS.forEach(function (name) { var e = $("err-" + name); if (e) { text(e, ""); show(e, false); } });
    show($("payout-settings-summary"), false);
  }

  function save(event) {
    event.preventDefault();
    clearErrors();
    var values = {};
    FIELDS.forEach(function (name) { values[name] = $(name).value || null; });
    text($("payout-settings-status"), "Saving…");
    api("PUT", "/api/settings", values).then(function () {
      text($("payout-settings-status"), "Payout accounts saved.");
      chosen = values;
    }).catch(function (err) {
      var errors = (err.body && err.body.errors) || {};
      var mine = Object.keys(errors).filter(function (k) { return FIELDS.indexOf(k) >= 0; });
      mine.forEach(function (name) { var e = $("err-" + name); text(e, errors[name]); show(e, true); });
      text($("payout-settings-summary"), mine.length ? "Some payout accounts need attention." : err.message);
      show($("payout-settings-summary"), true);
      text($("payout-settings-status"), "");
    });
  }

  function createAccount(what) {
    text($("payout-settings-status"), "Creating the account in QuickBooks…");
    api("POST", "/api/payouts/accounts", { create: [what] }).then(function (data) {
      Object.keys(data.created || {}).forEach(function (k) { chosen[k] = data.created[k]; justCreated[k] = data.created[k]; });
      text($("payout-settings-status"), "Account created and selected.");
      return loadOptions();
    }).catch(function (err) { text($("payout-settings-status"), err.message); });
  }

  function sync() {
    var since = $("payouts-since").value;
    text($("payouts-status"), "Syncing payouts" + (since ? " since " + since : "") + "…");
    api("POST", "/api/payouts/sync", since ? { since: since } : {}).then(function () {
      text($("payouts-status"), "Syncing payouts" + (since ? " since " + since : "") + "… queued; this list refreshes.");
      var tries = 0;
      (function poll() {
        tries += 1;
        load().then(function () { if (tries < 20) window.setTimeout(poll, 2000); });
      })();
    }).catch(function (err) { text($("payouts-status"), err.message); });
  }

  card.addEventListener("click", function (event) {
    var action = event.target.getAttribute && event.target.getAttribute("data-action");
    if (action === "sync-payouts") sync();
    else if (action === "create-clearing") createAccount("clearing");
    else if (action === "create-fee") createAccount("fee");
  });
  $("payout-settings-form").addEventListener("submit", save);
  // Start once the page has its session (the page's own first calls mint the token the cards share).
  var app = document.getElementById("app");
  function start() { load().then(loadOptions); }
  if (!app || app.dataset.ready === "true") start();
  else {
    var watcher = new MutationObserver(function () {
      if (app.dataset.ready === "true") { watcher.disconnect(); start(); }
    });
    watcher.observe(app, { attributes: true, attributeFilter: ["data-ready"] });
  }
})();
