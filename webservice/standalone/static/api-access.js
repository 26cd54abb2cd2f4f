// "API access": asks webservice.php for an API session linked to this browser's login.
// The CSRF token travels in the X-CSRFToken header; the web cookie goes along (same origin).
(function () {
  "use strict";
  var button = document.getElementById("api-access");
  if (!button) { return; }
  var token = document.querySelector('meta[name="csrf-token"]').content;

  function show(id, text) {
    var element = document.getElementById(id);
    element.textContent = text;
    return element;
  }

  button.addEventListener("click", function () {
    button.disabled = true;
    document.getElementById("api-error").hidden = true;
    fetch(button.dataset.endpoint, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": token },
      body: new URLSearchParams({ operation: "extendsession" })
    })
      .then(function (response) { return response.json(); })
      .then(function (envelope) {
        if (!envelope.success) { throw new Error(envelope.error.code + ": " + envelope.error.message); }
        show("api-session-name", envelope.result.sessionName);
        show("api-user-id", envelope.result.userId);
        document.getElementById("api-session").hidden = false;
      })
      .catch(function (error) { show("api-error", String(error.message || error)).hidden = false; })
      .then(function () { button.disabled = false; });
  });
})();
