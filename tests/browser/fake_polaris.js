// Test stand-in for Shopify's polaris.js: the documented element API the page relies on (value, values,
// error, disabled, type="submit", s-option / s-choice children), drawn in shadow DOM like the real one.
(function () {
  "use strict";
  function plain(tag) {
    customElements.define(tag, class extends HTMLElement {
      connectedCallback() { if (!this.shadowRoot) this.attachShadow({ mode: "open" }).innerHTML = "<slot></slot>"; }
    });
  }
  ["s-page", "s-section", "s-banner", "s-badge", "s-table", "s-table-header-row", "s-table-header",
   "s-table-body", "s-table-row", "s-table-cell", "s-option", "s-choice"].forEach(plain);

  class Button extends HTMLElement {
    static get formAssociated() { return true; }
    constructor() { super(); this.internals = this.attachInternals(); }
    connectedCallback() {
      if (this.shadowRoot) return;
      this.attachShadow({ mode: "open", delegatesFocus: true }).innerHTML = "<button part='button'><slot></slot></button>";
      var inner = this.shadowRoot.querySelector("button");
      if (this.hasAttribute("accessibility-label")) inner.setAttribute("aria-label", this.getAttribute("accessibility-label"));
      inner.addEventListener("click", () => {
        if (this.getAttribute("type") === "submit" && this.internals.form) this.internals.form.requestSubmit();
      });
    }
    get disabled() { return this.hasAttribute("disabled"); }
    set disabled(v) { this.toggleAttribute("disabled", !!v); if (this.shadowRoot) this.shadowRoot.querySelector("button").disabled = !!v; }
  }
  customElements.define("s-button", Button);

  class Field extends HTMLElement {
    static get formAssociated() { return true; }
    static get observedAttributes() { return ["error"]; }
    constructor() { super(); this.internals = this.attachInternals(); }
    control() { return document.createElement("input"); }
    connectedCallback() {
      if (this.shadowRoot) return;
      var root = this.attachShadow({ mode: "open", delegatesFocus: true });
      var label = document.createElement("label");
      label.textContent = this.getAttribute("label") || "";
      this.input = this.control();
      this.input.id = "control";
      label.htmlFor = "control";
      this.errorNode = document.createElement("p");
      root.append(label, this.input, this.errorNode);
      this.input.addEventListener("change", () => this.dispatchEvent(new Event("change", { bubbles: true })));
      this.attributeChangedCallback();
    }
    attributeChangedCallback() { if (this.errorNode) this.errorNode.textContent = this.getAttribute("error") || ""; }
    get value() { return this.input ? this.input.value : ""; }
    set value(v) { this.input.value = v; }
  }
  customElements.define("s-text-field", class extends Field {});
  customElements.define("s-date-field", class extends Field {
    control() { var i = document.createElement("input"); i.type = "date"; return i; }
  });
  customElements.define("s-text-area", class extends Field {
    control() { return document.createElement("textarea"); }
  });
  customElements.define("s-select", class extends Field {
    control() { return document.createElement("select"); }
    connectedCallback() {
      super.connectedCallback();
      var sync = () => {
        var keep = this.input.value;
        this.input.textContent = "";
        this.querySelectorAll("s-option").forEach((o) => {
          var opt = document.createElement("option");
          opt.value = o.getAttribute("value") || "";
          opt.textContent = o.textContent;
          this.input.appendChild(opt);
        });
        this.input.value = keep;
      };
      new MutationObserver(sync).observe(this, { childList: true, subtree: true, characterData: true });
      sync();
    }
    set value(v) { this.pending = v; this.input.value = v; queueMicrotask(() => { this.input.value = this.pending; }); }
    get value() { return this.input ? this.input.value : ""; }
  });
  customElements.define("s-choice-list", class extends HTMLElement {
    static get formAssociated() { return true; }
    connectedCallback() {
      if (this.shadowRoot) return;
      this.attachShadow({ mode: "open" });
      // Children arrive after the element while the page is parsed: draw them whenever they change.
      new MutationObserver(() => this.render()).observe(this, { childList: true, subtree: true, characterData: true });
      this.render();
    }
    render() {
      var keep = this.shadowRoot.querySelector("input:checked");
      var set = document.createElement("fieldset");
      var legend = document.createElement("legend");
      legend.textContent = this.getAttribute("label") || "";
      set.appendChild(legend);
      this.querySelectorAll("s-choice").forEach((c) => {
        var label = document.createElement("label");
        var radio = document.createElement("input");
        radio.type = "radio";
        radio.name = "choice";
        radio.value = c.getAttribute("value");
        radio.checked = !!keep && keep.value === radio.value;
        label.append(radio, " " + (c.firstChild ? c.firstChild.textContent : ""));
        set.appendChild(label);
      });
      this.shadowRoot.replaceChildren(set);
    }
    get values() { var r = this.shadowRoot && this.shadowRoot.querySelector("input:checked"); return r ? [r.value] : []; }
    set values(list) {
      this.shadowRoot.querySelectorAll("input").forEach((r) => { r.checked = (list || []).indexOf(r.value) >= 0; });
    }
  });
})();
