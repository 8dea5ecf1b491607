// plaudhook's only hand-written script: small enhancements on top of htmx. Every page works
// without it.
(function () {
  "use strict";
  var MAX_ROWS = 200;

  document.addEventListener("htmx:sseMessage", function (e) {
    // The server asks for a full reload when a reconnecting stream missed too much to replay.
    if (e.detail && e.detail.type === "resync") {
      window.location.reload();
      return;
    }
    // Keep the live list bounded: the oldest rows fall off the bottom.
    var rows = document.querySelectorAll("#event-rows > tr, #delivery-rows > tr");
    for (var i = MAX_ROWS; i < rows.length; i++) {
      rows[i].remove();
    }
    var empty = document.querySelector("[data-testid=empty-state]");
    if (empty) {
      empty.remove();
    }
  });
})();
