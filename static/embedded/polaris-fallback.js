// Polaris web components, or readable native HTML when Shopify's CDN did not deliver them.
// Runs synchronously right after polaris.js: if <s-page> is not defined by then, every interactive
// s-* element (fields, buttons, tables) is replaced by the native element it stands for, as the parser
// adds it (before the first paint, so nothing shifts), and later insertions are converted too.
// Layout and display elements (s-page, s-section, s-banner, s-badge, s-stack) stay and are styled
// by app.css (`:not(:defined)`). Page code reads `EcomfluxPolaris.native` to know which API to use.
(function () {
  "use strict";

  var native = !(window.customElements && window.customElements.get("s-page"));
  var api = window.EcomfluxPolaris = { native: native, upgrade: function (node) { return node; }, flush: function () {} };
  if (!native) return;
  document.documentElement.classList.add("polaris-fallback");

  var FIELD_TAGS = { "S-TEXT-FIELD": 1, "S-DATE-FIELD": 1, "S-TEXT-AREA": 1, "S-SELECT": 1, "S-CHOICE-LIST": 1 };
  var CONVERTED = { "S-BUTTON": 1, "S-TABLE": 1, "S-TABLE-HEADER-ROW": 1, "S-TABLE-HEADER": 1, "S-TABLE-BODY": 1,
                    "S-TABLE-ROW": 1, "S-TABLE-CELL": 1 };
  Object.keys(FIELD_TAGS).forEach(function (t) { CONVERTED[t] = 1; });
  var SELECTOR = Object.keys(CONVERTED).join(",").toLowerCase();
  var PASS = ["id", "name", "disabled", "required", "autocomplete", "placeholder", "aria-describedby", "aria-label",
              "aria-controls", "aria-expanded", "hidden", "class"];

  function make(tag, attrs) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (attrs[k] !== null && attrs[k] !== undefined && attrs[k] !== false) node.setAttribute(k, attrs[k] === true ? "" : attrs[k]);
    });
    return node;
  }

  function copy(from, to, names) {
    names.forEach(function (n) { if (from.hasAttribute(n)) to.setAttribute(n, from.getAttribute(n)); });
    Array.prototype.forEach.call(from.attributes, function (a) {
      if (a.name.indexOf("data-") === 0) to.setAttribute(a.name, a.value);
    });
  }

  function moveChildren(from, to) { while (from.firstChild) to.appendChild(from.firstChild); }

  function describedBy(control, id) {
    var list = (control.getAttribute("aria-describedby") || "").split(/\s+/).filter(Boolean);
    if (list.indexOf(id) < 0) list.push(id);
    control.setAttribute("aria-describedby", list.join(" "));
  }

  function details(host, control, wrap) {
    var text = host.getAttribute("details");
    if (!text) return;
    var hint = make("p", { "class": "hint", id: (control.id || host.getAttribute("name")) + "-details" });
    hint.textContent = text;
    wrap.appendChild(hint);
    describedBy(control, hint.id);
  }

  function labelled(host, control) {
    var wrap = document.createDocumentFragment();
    var label = make("label", { "for": control.id });
    label.textContent = host.getAttribute("label") || "";
    if (host.getAttribute("label-accessibility-visibility") === "exclusive") label.className = "visually-hidden";
    wrap.appendChild(label);
    wrap.appendChild(control);
    details(host, control, wrap);
    return wrap;
  }

  var counter = 0;
  function ensureId(host) {
    if (!host.id) host.id = "pf-" + (++counter);
    return host.id;
  }

  var BUILD = {
    "S-BUTTON": function (host) {
      var classes = ["btn"];
      var variant = host.getAttribute("variant");
      var tone = host.getAttribute("tone");
      if (variant === "primary") classes.push(tone === "critical" ? "btn-critical" : "btn-primary");
      else if (tone === "critical") classes.push("btn-critical-plain");
      var button = make("button", { type: host.getAttribute("type") || "button" });
      copy(host, button, PASS);
      if (host.hasAttribute("accessibility-label")) button.setAttribute("aria-label", host.getAttribute("accessibility-label"));
      if (host.hasAttribute("value")) button.value = host.getAttribute("value");
      button.className = classes.concat((host.getAttribute("class") || "").split(/\s+/).filter(Boolean)).join(" ");
      moveChildren(host, button);
      return button;
    },
    "S-TEXT-FIELD": function (host) { return field(host, "text"); },
    "S-DATE-FIELD": function (host) { return field(host, "date"); },
    "S-TEXT-AREA": function (host) {
      var area = make("textarea", { rows: host.getAttribute("rows") || 4, spellcheck: "false" });
      copy(host, area, PASS);
      area.removeAttribute("class");
      area.id = ensureId(host);
      area.value = host.getAttribute("value") || "";
      return labelled(host, area);
    },
    "S-SELECT": function (host) {
      var select = make("select", {});
      copy(host, select, PASS);
      select.removeAttribute("class");
      select.id = ensureId(host);
      Array.prototype.forEach.call(host.querySelectorAll("s-option, option"), function (opt) {
        var o = make("option", { value: opt.getAttribute("value") || "" });
        copy(opt, o, []);
        o.textContent = opt.textContent;
        if (opt.hasAttribute("selected")) o.selected = true;
        select.appendChild(o);
      });
      if (host.hasAttribute("value")) select.value = host.getAttribute("value");
      return host.hasAttribute("label") ? labelled(host, select) : select;
    },
    "S-CHOICE-LIST": function (host) {
      var set = make("fieldset", { "class": "choice" });
      copy(host, set, ["id", "disabled", "hidden"]);
      var legend = make("legend", {});
      legend.textContent = host.getAttribute("label") || "";
      set.appendChild(legend);
      var name = host.getAttribute("name");
      var checked = (host.getAttribute("values") || "").split(",");
      Array.prototype.forEach.call(host.querySelectorAll("s-choice"), function (choice) {
        var input = make("input", { type: "radio", name: name, value: choice.getAttribute("value") });
        if (checked.indexOf(choice.getAttribute("value")) >= 0) input.checked = true;
        if (host.hasAttribute("disabled")) input.disabled = true;
        var label = make("label", {});
        label.appendChild(input);
        var hint = choice.querySelector('[slot="details"]');
        if (hint) hint.remove();
        label.appendChild(document.createTextNode(" " + choice.textContent.trim()));
        if (hint) {
          var span = make("span", { "class": "hint" });
          span.textContent = " " + hint.textContent;
          label.appendChild(span);
        }
        set.appendChild(label);
      });
      return set;
    },
    "S-TABLE": function (host) {
      var table = make("table", {});
      copy(host, table, PASS);
      if (host.hasAttribute("data-caption")) {
        var caption = make("caption", { "class": "visually-hidden" });
        caption.textContent = host.getAttribute("data-caption");
        table.appendChild(caption);
      }
      moveChildren(host, table);
      return table;
    },
    "S-TABLE-HEADER-ROW": function (host) {
      var head = make("thead", {});
      var row = make("tr", {});
      copy(host, row, PASS);
      moveChildren(host, row);
      head.appendChild(row);
      return head;
    },
    "S-TABLE-HEADER": function (host) {
      var th = make("th", { scope: "col" });
      copy(host, th, PASS);
      if (host.getAttribute("format") === "numeric" || host.getAttribute("format") === "currency") th.classList.add("num");
      moveChildren(host, th);
      return th;
    },
    "S-TABLE-BODY": function (host) {
      var body = make("tbody", {});
      copy(host, body, PASS);
      moveChildren(host, body);
      return body;
    },
    "S-TABLE-ROW": function (host) {
      var row = make("tr", {});
      copy(host, row, PASS);
      moveChildren(host, row);
      return row;
    },
    "S-TABLE-CELL": function (host) {
      // A cell marked as the row's header becomes <th scope="row"> so screen readers name the row.
      var cell = make(host.hasAttribute("data-row-header") ? "th" : "td", {});
      if (host.hasAttribute("data-row-header")) cell.setAttribute("scope", "row");
      copy(host, cell, PASS);
      cell.removeAttribute("data-row-header");
      moveChildren(host, cell);
      return cell;
    }
  };

  function field(host, type) {
    var input = make("input", { type: type });
    copy(host, input, PASS);
    input.removeAttribute("class");
    input.id = ensureId(host);
    if (host.hasAttribute("max-length")) input.setAttribute("maxlength", host.getAttribute("max-length"));
    if (host.hasAttribute("value")) input.value = host.getAttribute("value");
    return labelled(host, input);
  }

  // Replace one s-* element (and, inside what replaced it, every s-* descendant).
  function convert(node) {
    var build = BUILD[node.tagName];
    if (!build) return node;
    var out = build(node);
    if (!node.parentNode) return out;  // a detached tree the page is building: it inserts the result
    var first = out.nodeType === 11 ? out.firstChild : out;
    node.parentNode.replaceChild(out, node);
    return first;
  }

  function upgrade(root) {
    if (!root || (root.nodeType !== 1 && root.nodeType !== 11)) return root;
    var top = root.nodeType === 1 && CONVERTED[root.tagName] ? convert(root) : root;
    var found = top && top.querySelectorAll ? top.querySelectorAll(SELECTOR) : [];
    // Outermost first: a table converts before its rows, a select reads its own s-option children.
    Array.prototype.forEach.call(found, function (n) { if (n.parentNode) convert(n); });
    return top;
  }

  // While the document is parsed, an element is complete once anything follows it.
  function closed(node) {
    for (var n = node; n && n !== document.documentElement; n = n.parentNode) {
      if (n.nextSibling) return true;
    }
    return false;
  }

  var pending = [];
  function drain(all) {
    var keep = [];
    pending.forEach(function (n) {
      if (!n.parentNode) return;
      if (all || closed(n)) upgrade(n);
      else keep.push(n);
    });
    pending = keep;
  }

  var observer = new MutationObserver(function (records) {
    records.forEach(function (r) {
      Array.prototype.forEach.call(r.addedNodes, function (n) {
        if (n.nodeType !== 1) return;
        if (CONVERTED[n.tagName]) pending.push(n);
        else if (n.firstElementChild && n.querySelector) {
          Array.prototype.forEach.call(n.querySelectorAll(SELECTOR),
            function (c) { pending.push(c); });
        }
      });
    });
    drain(document.readyState !== "loading");
  });
  observer.observe(document.documentElement, { childList: true, subtree: true });
  document.addEventListener("DOMContentLoaded", function () { drain(true); });

  api.upgrade = upgrade;
  api.flush = function () { observer.takeRecords().forEach(function (r) {
    Array.prototype.forEach.call(r.addedNodes, function (n) { if (n.nodeType === 1 && CONVERTED[n.tagName]) pending.push(n); });
  }); drain(true); };
})();
