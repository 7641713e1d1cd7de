// 公用文校正: accept or ignore each finding in the browser. The marked text (#pf-doc) is the
// document; accepting a finding puts its suggestion in place of the mark, ignoring it removes the
// highlight, and #pf-output always holds the text as it now reads. Nothing goes back to the server.
(function () {
  "use strict";

  function refresh() {
    var doc = document.getElementById("pf-doc");
    var output = document.getElementById("pf-output");
    if (doc && output) output.value = doc.textContent;
    var open = document.getElementById("pf-open");
    if (open) open.textContent = String(document.querySelectorAll("#pf-list li[data-state='open']").length);
  }

  function settle(n, state) {
    var item = document.getElementById("pf-item-" + n);
    if (!item || item.dataset.state !== "open") return;
    var mark = document.querySelector("#pf-doc mark[data-pf='" + n + "']");
    if (state === "accepted" && mark && item.dataset.suggestion !== undefined) mark.textContent = item.dataset.suggestion;
    if (mark) mark.classList.add(state);
    item.dataset.state = state;
    item.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
    item.querySelector(".pf-state").textContent = state === "accepted" ? "採用済み / Accepted" : "無視 / Ignored";
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-pf-action]");
    if (!button) return;
    var action = button.dataset.pfAction;
    if (action === "accept-all") {
      document.querySelectorAll("#pf-list li[data-state='open'][data-suggestion]").forEach(function (item) {
        settle(item.id.slice("pf-item-".length), "accepted");
      });
    } else {
      settle(button.dataset.pf, action === "accept" ? "accepted" : "ignored");
    }
    refresh();
  });

  document.body.addEventListener("htmx:afterSwap", refresh);
})();
