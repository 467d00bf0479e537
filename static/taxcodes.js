/* Tax codes card (non-US companies): map unmapped Shopify taxes to existing QuickBooks codes. */
(function () {
  "use strict";
  // The page's own API helper (app.js): one session token for every request.
  function call(method, path, body) {
    var page = window.EcomFluxPage;
    if (!page || typeof page.api !== "function") return Promise.reject(new Error("page not ready"));
    return page.api(method, path, body);
  }

  function node(tag, text) { var n = document.createElement(tag); if (text) n.textContent = text; return n; }

  function render(state) {
    var card = document.getElementById("taxcodes");
    card.hidden = !state.applies;
    if (!state.applies) return;
    var byId = {};
    (state.codes || []).forEach(function (c) { byId[c.id] = c; });
    var list = document.getElementById("taxcodes-list");
    list.textContent = "";
    (state.codes || []).forEach(function (c) { list.appendChild(node("li", c.describe + " · " + c.kind.replace(/_/g, " "))); });
    var body = document.getElementById("taxcodes-unmapped");
    body.textContent = "";
    (state.unmapped || []).forEach(function (u) {
      var row = node("tr");
      row.appendChild(node("td", u.tax + " (" + u.line + ")"));
      row.appendChild(node("td", (u.orders || []).join(", ")));
      var cell = node("td");
      var select = node("select");
      select.setAttribute("data-tax", u.tax);
      select.setAttribute("aria-label", "QuickBooks tax code for " + u.tax);
      select.appendChild(node("option", u.suggestions.length ? "Choose a code" : "No code of this rate: add one in QuickBooks"));
      select.options[0].value = "";
      u.suggestions.forEach(function (id) {
        var opt = node("option", byId[id] ? byId[id].describe : id);
        opt.value = id;
        select.appendChild(opt);
      });
      cell.appendChild(select);
      row.appendChild(cell);
      body.appendChild(row);
    });
    var waiting = (state.unmapped || []).length;
    document.getElementById("taxcodes-unmapped-table").hidden = !waiting;
    document.getElementById("taxcodes-save").hidden = !waiting;
    document.getElementById("taxcodes-status").textContent = waiting
      ? waiting + " Shopify tax(es) need a QuickBooks tax code before their orders post."
      : "Every Shopify tax has a QuickBooks tax code.";
  }

  var codes = {};

  function load() {
    return call("GET", "/api/taxcodes").then(function (state) {
      (state.codes || []).forEach(function (c) { codes[c.id] = c; });
      render(state);
    }).catch(function () {});
  }

  function save() {
    var mapping = {};
    document.querySelectorAll("#taxcodes-unmapped select").forEach(function (s) {
      if (s.value) mapping[s.getAttribute("data-tax")] = s.value;
    });
    var status = document.getElementById("taxcodes-status");
    if (!Object.keys(mapping).length) { status.textContent = "Choose a code first."; return; }
    call("PUT", "/api/taxcodes", { mapping: mapping }).then(function (state) {
      render(state);
      status.textContent = "Saved. " + state.resumed + " waiting order(s) are posting now.";
    }).catch(function (err) { status.textContent = err.message; });
  }

  // Preview: name the tax code of each line (from the document's TaxCodeRef and the codes list).
  function annotatePreview(codes) {
    var pre = document.getElementById("preview-json");
    var rows = document.querySelectorAll("#preview-lines tr");
    if (!pre || !rows.length) return;
    var doc;
    try { doc = JSON.parse(pre.textContent); } catch (e) { return; }
    (doc.Line || []).forEach(function (line, i) {
      var ref = line.SalesItemLineDetail && line.SalesItemLineDetail.TaxCodeRef;
      var cell = rows[i] && rows[i].firstChild;
      if (!ref || !cell || cell.querySelector(".tax-code")) return;
      var tag = node("span", " · " + (codes[ref.value] ? codes[ref.value].describe : "tax code " + ref.value));
      tag.className = "tax-code subtle";
      cell.appendChild(tag);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (!document.getElementById("taxcodes")) return;
    document.getElementById("taxcodes-save").addEventListener("click", save);
    document.getElementById("taxcodes-refresh").addEventListener("click", function () {
      call("POST", "/api/taxcodes/refresh").then(render).catch(function (err) {
        document.getElementById("taxcodes-status").textContent = err.message;
      });
    });
    // Load once the page has its session token (a second concurrent mint would race it).
    var appNode = document.getElementById("app");
    if (!appNode || appNode.getAttribute("data-ready") === "true" || !window.MutationObserver) {
      load();
    } else {
      var waiting = new MutationObserver(function () {
        if (appNode.getAttribute("data-ready") === "true") { waiting.disconnect(); load(); }
      });
      waiting.observe(appNode, { attributes: true, attributeFilter: ["data-ready"] });
    }
    var target = document.getElementById("preview-lines");
    if (target && window.MutationObserver) {
      new MutationObserver(function () { annotatePreview(codes); }).observe(target, { childList: true });
    }
  });
})();
