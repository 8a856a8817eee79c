// The policy editor's line numbers and "go to line" for the errors the check lists. No build step.
(function () {
  function gutter() {
    var text = document.getElementById("policy-text"), g = document.getElementById("gutter");
    if (!text || !g) return;
    var bad = {};
    document.querySelectorAll("#policy-errors .goto").forEach(function (a) { bad[a.dataset.line] = true; });
    var n = text.value.split("\n").length, out = [];
    for (var i = 1; i <= n; i++) out.push(bad[i] ? '<span class="bad">' + i + "</span>" : String(i));
    g.innerHTML = out.join("\n");
    g.scrollTop = text.scrollTop;
  }
  function gotoLine(line) {
    var text = document.getElementById("policy-text");
    var lines = text.value.split("\n"), pos = 0;
    for (var i = 0; i < line - 1 && i < lines.length; i++) pos += lines[i].length + 1;
    text.focus();
    text.setSelectionRange(pos, pos + (lines[line - 1] || "").length);
    text.scrollTop = Math.max(0, (line - 5) * parseFloat(getComputedStyle(text).lineHeight));
    gutter();
  }
  document.addEventListener("DOMContentLoaded", function () {
    var text = document.getElementById("policy-text");
    if (!text) return;
    text.addEventListener("input", gutter);
    text.addEventListener("scroll", function () { document.getElementById("gutter").scrollTop = text.scrollTop; });
    gutter();
  });
  document.addEventListener("htmx:afterSwap", function () {
    gutter();
    var first = document.querySelector("#policy-errors .goto[data-line]");   // show the first error's line
    if (first && first.dataset.line) gotoLine(parseInt(first.dataset.line, 10));
  });
  if (window.htmx) {      // htmx binds the page's forms in its own load pass: enable them after it
    htmx.onLoad(function () { var page = document.getElementById("page"); if (page) page.disabled = false; });
  }
  document.addEventListener("click", function (e) {
    var a = e.target.closest && e.target.closest("a.goto");
    if (a && a.dataset.line) { e.preventDefault(); gotoLine(parseInt(a.dataset.line, 10)); }
  });
})();
