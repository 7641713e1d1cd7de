// Server-sent events read from a fetch() response (EventSource cannot POST a form or a JSON body):
// the chat page and the task apps' page both stream their answers this way.
(function () {
  "use strict";

  // Calls onEvent(name, data) for each event of the text/event-stream body, data parsed as JSON.
  // An exception thrown by onEvent stops the reading and rejects the returned promise.
  async function read(response, onEvent) {
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

  window.sekishoEvents = {read: read};
})();
