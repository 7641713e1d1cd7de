// The conversation page: answers stream in as they pass the output checks, then each turn is
// replaced by the server's rendering of it (sanitised Markdown, sources, support, audit number).
// Streamed text is only ever set as textContent; HTML comes from the server alone.
(function () {
  "use strict";

  var chat = document.getElementById("chat");
  if (!chat) return;
  var form = document.getElementById("ask-form");
  var question = document.getElementById("question");
  var turns = document.getElementById("turns");
  var errorBox = document.getElementById("chat-error");
  var busy = false;

  function conversationId() { return chat.dataset.conversation; }

  function showError(message) {
    errorBox.textContent = message;
    errorBox.hidden = !message;
  }

  async function json(method, url, body) {
    var response = await fetch(url, {
      method: method, credentials: "same-origin",
      headers: window.sekisho.headers(body ? {"Content-Type": "application/json"} : {}),
      body: body ? JSON.stringify(body) : undefined,
    });
    var data = await response.json().catch(function () { return {}; });
    if (!response.ok) throw new Error((data.error && data.error.message) || ("HTTP " + response.status));
    return data;
  }

  async function ensureConversation() {
    if (conversationId()) return conversationId();
    var created = await json("POST", "/api/conversations", {});
    chat.dataset.conversation = created.id;
    history.replaceState(null, "", "/chat?c=" + encodeURIComponent(created.id));
    var item = document.createElement("li");
    var link = document.createElement("a");
    link.href = "/chat?c=" + encodeURIComponent(created.id);
    link.setAttribute("aria-current", "page");
    link.textContent = created.title;
    item.appendChild(link);
    var list = document.getElementById("conversation-list");
    list.querySelectorAll("[aria-current]").forEach(function (a) { a.removeAttribute("aria-current"); });
    list.insertBefore(item, list.firstChild);
    return created.id;
  }

  function pendingTurn(text, replacing) {
    var article = document.createElement("article");
    article.className = "answer streaming";
    article.setAttribute("aria-busy", "true");
    var q = document.createElement("p");
    q.className = "question";
    q.textContent = "Q. " + text;
    var body = document.createElement("div");
    body.className = "text";
    var status = document.createElement("p");
    status.className = "muted";
    status.setAttribute("role", "status");
    status.textContent = "回答を作成中… / Answering…";
    article.append(q, body, status);
    if (replacing) replacing.replaceWith(article); else turns.appendChild(article);
    article.scrollIntoView({block: "nearest"});
    return article;
  }

  async function stream(url, body, article) {
    var response = await fetch(url, {
      method: "POST", credentials: "same-origin", headers: window.sekisho.headers({"Content-Type": "application/json"}),
      body: JSON.stringify(body),
    });
    if (!response.ok) {
      var data = await response.json().catch(function () { return {}; });
      throw new Error((data.error && data.error.message) || ("HTTP " + response.status));
    }
    var done = null;
    await window.sekisho.readEvents(response, function (name, data) {
      if (name === "delta") article.querySelector(".text").textContent += data.text;
      else if (name === "done") done = data;
      else if (name === "error") throw new Error(data.message);
    });
    if (!done) throw new Error("the answer ended early / 回答が途中で終わりました");
    var rendered = await fetch("/ui/conversations/" + encodeURIComponent(conversationId()) + "/turns/" + done.n,
                               {credentials: "same-origin"});
    var holder = document.createElement("div");
    holder.innerHTML = await rendered.text();
    var turn = holder.firstElementChild;
    turns.querySelectorAll(".regenerate").forEach(function (b) { b.remove(); });
    article.replaceWith(turn);
    if (window.htmx) window.htmx.process(turn);
    if (done.n === 1) {
      var current = document.querySelector("#conversation-list [aria-current]");
      if (current) current.textContent = done.question;
    }
    document.body.dispatchEvent(new Event("sekisho:answered"));  // the quota panel counts again
    return done;
  }

  async function ask(event) {
    event.preventDefault();
    var text = question.value.trim();
    if (!text || busy) return;
    busy = true;
    showError("");
    var article = pendingTurn(text);
    try {
      var id = await ensureConversation();
      question.value = "";
      await stream("/api/conversations/" + encodeURIComponent(id) + "/messages",
                   {content: text, backend: document.getElementById("backend").value, stream: true}, article);
    } catch (error) {
      article.remove();
      question.value = text;
      showError(error.message);
    } finally {
      busy = false;
    }
  }

  form.addEventListener("submit", ask);
  question.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); form.requestSubmit(); }
  });

  document.getElementById("new-conversation").addEventListener("click", function () {
    window.location.href = "/chat";
  });

  turns.addEventListener("click", async function (event) {
    var rating = event.target.closest("[data-rating]");
    if (rating) {
      var box = rating.closest(".feedback");
      box.querySelectorAll("[data-rating]").forEach(function (b) { b.setAttribute("aria-pressed", String(b === rating)); });
      box.dataset.rating = rating.dataset.rating;
      box.querySelector(".feedback-reason").hidden = false;
      await sendFeedback(box, "");
      return;
    }
    var again = event.target.closest(".regenerate");
    if (again && !busy) {
      busy = true;
      showError("");
      var old = again.closest("article");
      var text = old.querySelector(".question").textContent.replace(/^Q\.\s*/, "");
      var article = pendingTurn(text, old);
      try {
        await stream("/api/conversations/" + encodeURIComponent(conversationId()) + "/regenerate",
                     {backend: document.getElementById("backend").value, stream: true}, article);
      } catch (error) {
        article.replaceWith(old);
        showError(error.message);
      } finally {
        busy = false;
      }
    }
  });

  turns.addEventListener("submit", async function (event) {
    var reasonForm = event.target.closest(".feedback-reason");
    if (!reasonForm) return;
    event.preventDefault();
    await sendFeedback(reasonForm.closest(".feedback"), reasonForm.elements.reason.value);
    reasonForm.hidden = true;
  });

  async function sendFeedback(box, reason) {
    try {
      await json("POST", "/api/feedback", {audit_seq: Number(box.dataset.audit), rating: Number(box.dataset.rating), reason: reason});
      box.querySelector(".feedback-done").textContent = reason ? "理由を送りました / Reason sent" : "ありがとうございます / Thank you";
    } catch (error) {
      box.querySelector(".feedback-done").textContent = error.message;
    }
  }

  var rename = document.getElementById("rename-conversation");
  if (rename) {
    var renameForm = document.getElementById("rename-form");
    rename.addEventListener("click", function () { renameForm.hidden = !renameForm.hidden; });
    renameForm.addEventListener("submit", async function (event) {
      event.preventDefault();
      try {
        var renamed = await json("PATCH", "/api/conversations/" + encodeURIComponent(conversationId()),
                                 {title: renameForm.elements.title.value});
        document.getElementById("conversation-title").textContent = renamed.title;
        var current = document.querySelector("#conversation-list [aria-current]");
        if (current) current.textContent = renamed.title;
        renameForm.hidden = true;
      } catch (error) { showError(error.message); }
    });
    document.getElementById("delete-conversation").addEventListener("click", async function () {
      if (!window.confirm("この会話を削除しますか？ / Delete this conversation?")) return;
      try {
        await json("DELETE", "/api/conversations/" + encodeURIComponent(conversationId()));
        window.location.href = "/chat";
      } catch (error) { showError(error.message); }
    });
  }
})();
