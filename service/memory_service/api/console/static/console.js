// The console's progressive enhancement: every page works without it.
// - <time datetime> elements: shown in the viewer's time zone (the server writes UTC);
// - copy buttons for a newly created key;
// - the erase form's button stays disabled until the user id is typed exactly.
"use strict";

(function () {
  var formatter;
  try {
    formatter = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
  } catch (e) {
    formatter = null;
  }

  function localiseTimes(root) {
    var times = root.querySelectorAll("time[datetime]");
    for (var i = 0; i < times.length; i++) {
      var el = times[i];
      var iso = el.getAttribute("datetime");
      var when = new Date(iso);
      if (isNaN(when.getTime())) continue;
      el.textContent = formatter ? formatter.format(when) : when.toLocaleString();
      el.title = iso;
    }
    var zone = root.querySelector("[data-tz]");
    if (zone) {
      var name = Intl.DateTimeFormat().resolvedOptions().timeZone;
      zone.textContent = "Times in " + (name || "your time zone");
    }
  }

  function copyButtons(root) {
    var buttons = root.querySelectorAll("button[data-copy]");
    for (var i = 0; i < buttons.length; i++) {
      (function (button) {
        var source = document.getElementById(button.getAttribute("data-copy"));
        if (!source) return;
        button.hidden = false;
        button.addEventListener("click", function () {
          var text = source.textContent;
          var done = function () { button.textContent = "Copied"; };
          if (navigator.clipboard && navigator.clipboard.writeText) {
            navigator.clipboard.writeText(text).then(done, function () { selectText(source); });
          } else {
            selectText(source);
          }
        });
      })(buttons[i]);
    }
  }

  function selectText(node) {
    var range = document.createRange();
    range.selectNodeContents(node);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  function eraseConfirmation(root) {
    var forms = root.querySelectorAll("form[data-erase]");
    for (var i = 0; i < forms.length; i++) {
      var input = forms[i].querySelector("input[data-expected]");
      var button = forms[i].querySelector("button[type=submit]");
      if (!input || !button) continue;
      (function (input, button) {
        var check = function () { button.disabled = input.value.trim() !== input.getAttribute("data-expected"); };
        input.addEventListener("input", check);
        check();
      })(input, button);
    }
  }

  function start() {
    localiseTimes(document);
    copyButtons(document);
    eraseConfirmation(document);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
