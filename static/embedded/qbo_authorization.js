// Intuit's refresh-token expiry on the Accounting page: a warning ahead of it (from /api/status, which app.js
// announces as an "ecomflux:status" event), and the connect flow started when Intuit's Reconnect URL sent
// the merchant here (?qbo=reconnect). The button carries data-action="connect", so app.js runs the flow.
(function () {
  "use strict";
  var reconnecting = new URLSearchParams(window.location.search).get("qbo") === "reconnect";

  document.addEventListener("ecomflux:status", function (event) {
    var status = event.detail || {};
    var authorization = (status.qbo && status.qbo.authorization) || null;
    var warning = authorization && authorization.warning;
    document.getElementById("qbo-authorization-message").textContent = warning || "";
    document.getElementById("qbo-authorization-banner").hidden = !warning;
    if (reconnecting && status.installed !== false) {
      reconnecting = false;
      document.getElementById("qbo-authorization-reconnect").click();
    }
  });
})();
