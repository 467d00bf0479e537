// The support console's only script (the CSP allows no inline code): pages still filling in reload themselves.
(function () {
  "use strict";
  var node = document.querySelector("[data-reload-after]");
  if (node) setTimeout(function () { window.location.reload(); }, Number(node.dataset.reloadAfter) || 2000);
})();
