// The host page's own script (tests/host/hostapp.py, /app): an API session linked to this
// browser's login. extendsession carries the CSRF token of the page's meta tag in X-CSRFToken
// (the host's cookie goes along, same origin); listtypes and logout carry only the sessionName.
(function () {
  "use strict";
  var endpoint = "/webservice.php";
  var token = document.querySelector('meta[name="wsgate-csrf"]').content;
  var logoutButton = document.getElementById("api-logout");
  var sessionName = null;

  function show(id, text) {
    document.getElementById(id).textContent = text;
  }

  function result(response) {
    return response.json().then(function (envelope) {
      if (!envelope.success) { throw new Error(envelope.error.code + ": " + envelope.error.message); }
      return envelope.result;
    });
  }

  function post(params, headers) {
    return fetch(endpoint, {
      method: "POST",
      credentials: "same-origin",
      headers: headers || {},
      body: new URLSearchParams(params)
    }).then(result);
  }

  function failed(error) {
    show("api-status", "error " + String(error.message || error));
  }

  post({ operation: "extendsession" }, { "X-CSRFToken": token })
    .then(function (session) {
      sessionName = session.sessionName;
      show("api-session-name", session.sessionName);
      show("api-user-id", session.userId);
      var query = new URLSearchParams({ operation: "listtypes", sessionName: sessionName });
      return fetch(endpoint + "?" + query, { credentials: "omit" }).then(result);
    })
    .then(function (listed) {
      show("api-types", listed.types.join(" "));
      show("api-status", "listtypes ok");
      logoutButton.disabled = false;
    })
    .catch(failed);

  logoutButton.addEventListener("click", function () {
    logoutButton.disabled = true;
    post({ operation: "logout", sessionName: sessionName })
      .then(function () { show("api-status", "API logged out"); })
      .catch(failed);
  });
})();
