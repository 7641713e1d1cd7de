// A task app's page: the form is sent with its files, the output streams in part by part (set as
// text only), then each part is replaced by the server's rendering (sanitised Markdown) with its
// status and audit number.
(function () {
  "use strict";

  var form = document.getElementById("app-form");
  if (!form) return;
  var output = document.getElementById("app-output");
  var errorBox = document.getElementById("app-error");

  function part(title) {
    var section = document.createElement("article");
    section.className = "answer app-part streaming";
    var heading = document.createElement("h2");
    heading.textContent = title;
    var body = document.createElement("div");
    body.className = "text";
    section.append(heading, body);
    output.appendChild(section);
    return section;
  }

  function finish(section, data) {
    section.classList.remove("streaming");
    var body = section.querySelector(".text");
    if (data.status === "ok" && data.html) {
      body.innerHTML = data.html;  // rendered and sanitised by the server
      body.classList.add("markdown");
      if (window.htmx) window.htmx.process(body);
    } else {
      body.textContent = data.status === "ok" ? data.text : data.message;
    }
    var meta = document.createElement("p");
    meta.className = "muted";
    var status = document.createElement("span");
    status.className = "status " + data.status;
    status.textContent = data.status;
    meta.append(status, " 監査記録 / audit #" + data.audit_seq + " · " + data.backend);
    section.appendChild(meta);
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    errorBox.hidden = true;
    output.replaceChildren();
    var button = document.getElementById("run-app");
    button.disabled = true;
    var sections = [];
    try {
      var body = new FormData(form);
      body.append("stream", "true");
      var response = await fetch("/api/apps/" + encodeURIComponent(form.dataset.app) + "/run",
                                 {method: "POST", body: body, credentials: "same-origin", headers: window.sekisho.headers()});
      if (!response.ok) {
        var failed = await response.json().catch(function () { return {}; });
        throw new Error((failed.error && failed.error.message) || ("HTTP " + response.status));
      }
      await window.sekisho.readEvents(response, function (name, value) {
        if (name === "part") sections.push(part(value.title));
        else if (name === "delta") sections[sections.length - 1].querySelector(".text").textContent += value.text;
        else if (name === "done") value.parts.forEach(function (p, i) { finish(sections[i] || part(p.title), p); });
        else if (name === "error") throw new Error(value.message);
      });
    } catch (error) {
      errorBox.textContent = error.message;
      errorBox.hidden = false;
    } finally {
      button.disabled = false;
    }
  });
})();
