// What the chat page and the task apps' page share: the headers a request made with the session
// cookie must carry, and server-sent events read from a fetch() response (EventSource cannot POST
// a form or a JSON body; both pages stream their answers this way).
(function () {
  "use strict";

  // The session's CSRF token, which every state-changing request made with the cookie must carry.
  function headers(extra) {
    var token = document.querySelector('meta[name="csrf-token"]');
    return Object.assign(token ? {"X-CSRF-Token": token.content} : {}, extra);
  }

  // Calls onEvent(name, data) for each event of the text/event-stream body, data parsed as JSON.
  // An exception thrown by onEvent stops the reading and rejects the returned promise.
  async function readEvents(response, onEvent) {
    var reader = response.body.getReader();
    var decoder = new TextDecoder();
    var buffer = "";
    for (;;) {
      var chunk = await reader.read();
      if (chunk.done) break;
      buffer += decoder.decode(chunk.value, {stream: true});
      var events = buffer.split("\n\n");
      buffer = events.pop();
      events.forEach(function (raw) {
        var name = "message", data = "";
        raw.split("\n").forEach(function (line) {
          if (line.indexOf("event: ") === 0) name = line.slice(7);
          else if (line.indexOf("data: ") === 0) data += line.slice(6);
        });
        if (data) onEvent(name, JSON.parse(data));
      });
    }
  }

  window.sekisho = {headers: headers, readEvents: readEvents};
})();
