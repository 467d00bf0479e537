// Bounce page: inside the Shopify admin App Bridge hands us a session token; reload the page with it.
(function () {
  "use strict";
  if (!window.shopify || typeof window.shopify.idToken !== "function") return;
  window.shopify.idToken().then(function (token) {
    var url = new URL(window.location.href);
    url.searchParams.set("id_token", token);
    window.location.replace(url.toString());
  }).catch(function () {
    document.getElementById("bounce-message").textContent =
      "Shopify did not provide a session. Reopen EcomFlux from the Apps section of your Shopify admin.";
  });
})();
