/* Component previews on the /plugins page: ours, no dependency, no build step.
   For each [data-plugin-preview] element, ask the server to render the component with the
   sample data its manifest declares (POST /api/plugins/<id>/render-component) and show the
   answer. The HTML comes from the server, which escapes every value a plugin supplied; this
   script only places it. */
(function () {
  "use strict";
  function csrfToken() {
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }
  function preview(el) {
    var sample = document.getElementById(el.dataset.sample);
    var data = sample ? JSON.parse(sample.textContent) : {};
    fetch("/api/plugins/" + encodeURIComponent(el.dataset.pluginPreview) + "/render-component", {
      method: "POST",
      credentials: "same-origin",
      headers: {"Content-Type": "application/json", "Accept": "application/json", "X-CSRFToken": csrfToken()},
      body: JSON.stringify({component: el.dataset.component, data: data})
    }).then(function (response) {
      return response.json().then(function (body) { return {ok: response.ok, body: body}; });
    }).then(function (result) {
      if (result.ok) {
        el.innerHTML = result.body.html;
        el.dataset.rendered = "1";
      } else {
        el.textContent = "Preview failed: " + ((result.body.error || {}).message || "error");
        el.dataset.rendered = "error";
      }
    }).catch(function (error) {
      el.textContent = "Preview failed: " + error;
      el.dataset.rendered = "error";
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-plugin-preview]").forEach(preview);
  });
})();
