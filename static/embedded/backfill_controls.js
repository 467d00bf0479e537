// History import Resume/Cancel and the connection's "not answering" notice; loads after app.js.
(function () {
  "use strict";

  function $(id) { return document.getElementById(id); }
  var current = null;

  document.addEventListener("ecomflux:backfill", function (event) {
    var run = event.detail;
    current = run;
    var stopped = run && (run.stalled || run.status === "paused" || run.status === "failed");
    $("backfill-controls").hidden = !stopped;
    var note = $("backfill-stalled");
    note.hidden = !(run && run.stalled);
    note.textContent = run && run.stalled
      ? "This import stopped before it finished (the process running it ended). Resume it from where it stopped, or cancel it to start another."
      : "";
  });

  document.addEventListener("ecomflux:status", function (event) {
    var qbo = (event.detail && event.detail.qbo) || {};
    var box = $("qbo-problem");
    box.hidden = !qbo.problem;
    box.textContent = qbo.problem || "";
    if (qbo.problem && $("connected-since")) $("connected-since").textContent = "";
  });

  function act(verb, button) {
    var page = window.EcomFluxPage;
    if (!page || !current) return;
    button.disabled = true;
    page.api("POST", "/api/backfill/" + current.id + "/" + verb).then(function () {
      page.toast(verb === "resume" ? "Import resumed" : "Import cancelled");
    }).catch(function (err) {
      $("backfill-status").textContent = err.message;
    }).then(function () {
      button.disabled = false;
      return page.loadBackfill();
    });
  }

  $("backfill-resume").addEventListener("click", function (event) { act("resume", event.currentTarget); });
  $("backfill-cancel").addEventListener("click", function (event) { act("cancel", event.currentTarget); });
})();
