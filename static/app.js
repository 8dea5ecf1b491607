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
    // Keep live lists bounded: the oldest rows fall off the bottom. (The event and delivery
    // lists hold new rows back and trim themselves: see the explorer below.)
    var rows = document.querySelectorAll("#transcript-rows > tr");
    for (var i = MAX_ROWS; i < rows.length; i++) {
      rows[i].remove();
    }
  });
})();

// Event explorer (issue 7): live lists that collapse bursts, keyboard navigation, copy buttons,
// relative times and filters that apply as they change. All keyed on data- attributes.
(function () {
  "use strict";
  var VISIBLE_MAX = 150; // rows shown; older ones fall off the bottom
  var PENDING_MAX = 50; // new rows held back; more means "reload to see them"
  var AUTO_SHOW = 3; // a trickle this small is shown at once when the reader is at the top
  var FLUSH_MS = 250; // at most four renders a second

  // Live lists: new rows land in a hidden tbody (htmx's SSE swap). Every FLUSH_MS they are either
  // shown, when few and the reader is at the top, or counted in a "N new — show" bar, so a
  // burst never re-renders the list many times a second and the page stays bounded.
  document.querySelectorAll("[data-live-list]").forEach(function (region) {
    var pending = region.querySelector("[data-pending]");
    var rows = region.querySelector("tbody:not([data-pending])");
    var bar = region.querySelector("[data-new-bar]");
    if (!pending || !rows || !bar) {
      return;
    }
    var count = bar.querySelector("[data-new-count]");
    var arrived = 0; // rows that arrived since the last show, dropped ones included
    var overflow = false; // some were dropped: showing them needs a reload
    var timer = null;

    function readerAtTop() {
      return window.scrollY < 80 && !rows.querySelector("tr.selected");
    }

    function flush() {
      timer = null;
      if (arrived === 0) {
        return;
      }
      if (!overflow && arrived <= AUTO_SHOW && bar.hidden && readerAtTop()) {
        show();
        return;
      }
      count.textContent = String(arrived);
      bar.hidden = false;
    }

    function show() {
      if (overflow) {
        window.location.reload();
        return;
      }
      var frag = document.createDocumentFragment();
      while (pending.firstElementChild) {
        frag.appendChild(pending.firstElementChild);
      }
      rows.insertBefore(frag, rows.firstElementChild);
      arrived = 0;
      bar.hidden = true;
      trim();
      relativeTimes(rows);
      var empty = document.querySelector("[data-testid=empty-state]");
      if (empty) {
        empty.remove();
      }
    }

    // Keep the list bounded; the "older" link then starts below the last row still shown.
    function trim() {
      if (rows.children.length <= VISIBLE_MAX) {
        return;
      }
      while (rows.children.length > VISIBLE_MAX) {
        rows.lastElementChild.remove();
      }
      var pager = document.querySelector("[data-pager]");
      var next = pager && pager.querySelector("[data-next]");
      var last = rows.lastElementChild;
      if (next && last && last.dataset.id) {
        var u = new URL(pager.dataset.base, window.location.href);
        u.searchParams.set("before", last.dataset.id);
        next.href = u.pathname + u.search;
        next.hidden = false;
      }
    }

    pending.addEventListener("htmx:sseMessage", function () {
      arrived++;
      while (pending.children.length > PENDING_MAX) {
        pending.lastElementChild.remove();
        overflow = true;
      }
      if (!timer) {
        timer = window.setTimeout(flush, FLUSH_MS);
      }
    });
    // Under a burst the server sends only the newest rows and counts the rest in a "skipped"
    // message: they arrived, but showing them needs a reload.
    var signal = region.querySelector("[data-stream-signal]");
    if (signal) {
      signal.addEventListener("htmx:sseMessage", function (e) {
        var n = e.detail && e.detail.type === "skipped" ? parseInt(e.detail.data, 10) : 0;
        if (!(n > 0)) {
          return;
        }
        arrived += n;
        overflow = true;
        if (!timer) {
          timer = window.setTimeout(flush, FLUSH_MS);
        }
      });
    }
    bar.querySelector("[data-show-new]").addEventListener("click", show);
  });

  // Keyboard: j and k move through the rows of a list, Enter opens the selected one (its link
  // has the focus), "/" jumps to the search box, Escape leaves it.
  function navRows() {
    return Array.prototype.slice.call(
      document.querySelectorAll("[data-nav-list] tbody:not([data-pending]) > tr"));
  }

  function select(row) {
    document.querySelectorAll("[data-nav-list] tr.selected").forEach(function (r) {
      r.classList.remove("selected");
    });
    row.classList.add("selected");
    var link = row.querySelector("[data-nav-link]");
    if (link) {
      link.focus({ preventScroll: true });
    }
    row.scrollIntoView({ block: "nearest" });
  }

  document.addEventListener("keydown", function (e) {
    if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey) {
      return;
    }
    var t = e.target;
    if (t.closest && t.closest("input, textarea, select, [contenteditable]")) {
      if (e.key === "Escape") {
        t.blur();
      }
      return;
    }
    if (e.key === "/") {
      var q = document.getElementById("q");
      if (q) {
        e.preventDefault();
        q.focus();
        q.select();
      }
      return;
    }
    if (e.key !== "j" && e.key !== "k") {
      return;
    }
    var list = navRows();
    if (list.length === 0) {
      return;
    }
    var cur = -1;
    list.forEach(function (r, i) {
      if (r.classList.contains("selected")) {
        cur = i;
      }
    });
    var next = cur === -1 ? 0 : cur + (e.key === "j" ? 1 : -1);
    next = Math.max(0, Math.min(list.length - 1, next));
    e.preventDefault();
    select(list[next]);
  });

  // A row's link reached with Tab selects its row too, so j/k continue from there.
  document.addEventListener("focusin", function (e) {
    var link = e.target.closest && e.target.closest("[data-nav-link]");
    if (link) {
      var row = link.closest("tr");
      if (row && !row.classList.contains("selected")) {
        document.querySelectorAll("[data-nav-list] tr.selected").forEach(function (r) {
          r.classList.remove("selected");
        });
        row.classList.add("selected");
      }
    }
  });

  // Copy buttons: hidden without script, since only script can copy.
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Plain-HTTP office servers have no clipboard API: select a scratch field and copy.
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "sr-only";
    document.body.appendChild(area);
    area.select();
    var ok = document.execCommand("copy");
    area.remove();
    return ok ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  function showCopyButtons(root) {
    root.querySelectorAll("button.copy[hidden]").forEach(function (b) {
      b.hidden = false;
    });
  }
  showCopyButtons(document);

  document.addEventListener("click", function (e) {
    var b = e.target.closest && e.target.closest("button.copy");
    if (!b) {
      return;
    }
    // data-copy-text: the text itself; data-copy-target: the id of an element whose text is
    // copied; data-copy: a CSS selector of such an element.
    var text = b.dataset.copyText;
    var el = null;
    if (text === undefined && b.dataset.copyTarget) {
      el = document.getElementById(b.dataset.copyTarget);
    } else if (text === undefined && b.dataset.copy) {
      el = document.querySelector(b.dataset.copy);
    }
    if (el) {
      text = el.value !== undefined && el.matches("input, textarea") ? el.value : el.innerText;
    }
    var label = b.dataset.label || b.textContent;
    b.dataset.label = label;
    copyText(text || "").then(function () {
      b.textContent = "copied";
      b.dataset.copied = "true";
    }, function () {
      b.textContent = "copy failed";
    });
    window.setTimeout(function () {
      b.textContent = label;
    }, 1500);
  });

  // Relative times: "5 min ago", with the exact time kept as the title.
  function ago(then) {
    var s = Math.round((Date.now() - then.getTime()) / 1000);
    if (isNaN(s)) {
      return null;
    }
    if (s < 0) {
      return "in the future";
    }
    if (s < 45) {
      return s + " s ago";
    }
    if (s < 3600) {
      return Math.round(s / 60) + " min ago";
    }
    if (s < 86400) {
      return Math.round(s / 3600) + " h ago";
    }
    if (s < 30 * 86400) {
      return Math.round(s / 86400) + " d ago";
    }
    return null; // older: the exact date says more
  }

  function relativeTimes(root) {
    root.querySelectorAll("time[data-relative]").forEach(function (t) {
      var text = ago(new Date(t.getAttribute("datetime")));
      if (!t.title) {
        t.title = t.textContent;
      }
      if (text) {
        t.textContent = text;
      }
    });
  }
  relativeTimes(document);
  window.setInterval(function () {
    relativeTimes(document);
  }, 30000);
  document.addEventListener("htmx:afterSwap", function (e) {
    relativeTimes(e.target);
    showCopyButtons(e.target);
  });

  // Filters apply as soon as a menu or box changes (the Apply button remains for keyboards
  // and for pages without script).
  document.addEventListener("change", function (e) {
    var el = e.target;
    if (el.matches && el.matches("[data-autosubmit]") && el.form) {
      el.form.requestSubmit();
    }
  });
})();

// Transcripts (issue 5): blurred text revealed by a click, and the in-page search that
// highlights as you type. Without script, blurred text shows while its block has focus, and
// the search form asks the server, which highlights the same way.
(function () {
  "use strict";

  // A new transcript arrived live: the "no transcripts yet" note goes.
  document.addEventListener("htmx:sseMessage", function (e) {
    if (e.detail && e.detail.type === "transcript-new") {
      var empty = document.querySelector("[data-testid=transcripts-empty]");
      if (empty) {
        empty.remove();
      }
    }
  });

  // Privacy for shared screens: the first click on blurred text reveals it (a snippet link
  // is followed on the second click).
  document.addEventListener("click", function (e) {
    var box = e.target.closest(".blurred .block, .blurred a.snippet");
    if (!box || box.classList.contains("revealed")) {
      return;
    }
    box.classList.add("revealed");
    if (box.matches("a.snippet")) {
      e.preventDefault();
    }
  });

  var input = document.querySelector("[data-transcript-search]");
  if (!input) {
    return;
  }
  var form = input.form;
  var count = form.querySelector("[data-search-count]");
  var texts = Array.prototype.slice.call(document.querySelectorAll("[data-seg-text]"));
  var shown = null; // the query currently highlighted
  var current = -1; // index of the match last jumped to

  // Terms as the server splits them: words, or "quoted phrases".
  function terms(q) {
    var out = [];
    var re = /"([^"]*)"?|(\S+)/g;
    var m;
    while ((m = re.exec(q)) !== null && out.length < 10) {
      var t = (m[1] !== undefined ? m[1] : m[2]).replace(/\s+/g, " ").trim();
      if (t) {
        out.push(t);
      }
    }
    return out.sort(function (a, b) { return b.length - a.length; });
  }

  function escapeRe(s) {
    return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  }

  function label(n) {
    return n === 0 ? "no match" : n === 1 ? "1 match" : n + " matches";
  }

  // Rebuild every segment's text with <mark> around the matches. Text goes in as text nodes:
  // nothing from a transcript is ever parsed as HTML.
  function highlight() {
    var t = terms(input.value);
    var re = t.length ? new RegExp(t.map(escapeRe).join("|"), "giu") : null;
    var n = 0;
    texts.forEach(function (el) {
      var text = el.textContent;
      el.textContent = "";
      if (!re) {
        el.appendChild(document.createTextNode(text));
        return;
      }
      var last = 0;
      var m;
      re.lastIndex = 0;
      while ((m = re.exec(text)) !== null) {
        el.appendChild(document.createTextNode(text.slice(last, m.index)));
        var mark = document.createElement("mark");
        mark.textContent = m[0];
        el.appendChild(mark);
        last = m.index + m[0].length;
        n++;
      }
      el.appendChild(document.createTextNode(text.slice(last)));
    });
    shown = input.value;
    current = -1;
    count.textContent = t.length ? label(n) : "";
  }

  var timer = null;
  input.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(highlight, 120);
  });

  // Enter (or Find) jumps to the next match instead of reloading the page.
  form.addEventListener("submit", function (e) {
    e.preventDefault();
    clearTimeout(timer);
    if (shown !== input.value) {
      highlight();
    }
    var marks = document.querySelectorAll("[data-seg-text] mark");
    if (!marks.length) {
      return;
    }
    if (current >= 0 && marks[current]) {
      marks[current].classList.remove("current");
    }
    current = (current + 1) % marks.length;
    marks[current].classList.add("current");
    marks[current].scrollIntoView({ block: "center" });
    count.textContent = (current + 1) + " of " + label(marks.length);
    history.replaceState(null, "", "?q=" + encodeURIComponent(input.value));
  });
})();

// Replay (issue 6): replay form errors shown in place, and the attempt log's placeholder row
// removed when the first attempt arrives live. Its copy-as-curl buttons (button.copy with
// data-copy) are served by the shared copy handler above, which also works on plain HTTP.
(function () {
  "use strict";

  // htmx leaves 4xx answers unswapped; a form marked data-swap-errors shows the server's
  // explanation (a refused target, a body that is not JSON) where its result goes.
  document.addEventListener("htmx:beforeSwap", function (e) {
    var status = e.detail.xhr.status;
    if (status >= 400 && status < 500 && e.detail.elt.closest("[data-swap-errors]")) {
      e.detail.shouldSwap = true;
      e.detail.isError = false;
    }
  });

  // Mark a live region while its stream is open (styles and tests can tell).
  document.addEventListener("htmx:sseOpen", function (e) {
    e.target.setAttribute("data-live", "open");
  });
  document.addEventListener("htmx:sseError", function (e) {
    e.target.setAttribute("data-live", "closed");
  });

  document.addEventListener("htmx:sseMessage", function (e) {
    if (e.detail && e.detail.type === "attempt-new") {
      var placeholder = document.querySelector("#attempt-rows > tr.placeholder");
      if (placeholder) {
        placeholder.remove();
      }
    }
  });
})();
