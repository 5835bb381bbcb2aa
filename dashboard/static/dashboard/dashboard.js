// Small enhancements; every page works without them.
(function () {
  "use strict";

  // A page that shows a secret replaces its history entry, so reloading asks the server
  // for the plain list instead of sending the form again.
  var body = document.body;
  var replaceWith = body.getAttribute("data-replace-url");
  if (replaceWith && window.history && window.history.replaceState) {
    window.history.replaceState(null, "", replaceWith);
  }

  // Copy buttons: data-copy="<id of the element holding the text>".
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      var source = document.getElementById(button.getAttribute("data-copy"));
      if (!source) return;
      var text = source.textContent.trim();
      var done = function () {
        var label = button.textContent;
        button.textContent = "Copied";
        var status = document.getElementById(button.getAttribute("data-status") || "");
        if (status) status.textContent = "Copied to the clipboard.";
        setTimeout(function () { button.textContent = label; }, 2000);
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(done, function () { selectText(source); });
      } else {
        selectText(source);
        try { if (document.execCommand("copy")) done(); } catch (e) { /* selected for Ctrl-C */ }
      }
    });
  });

  function selectText(element) {
    var range = document.createRange();
    range.selectNodeContents(element);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  // Destructive forms ask first: data-confirm="Revoke this key?".
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
    });
  });

  // Character counter for the message box.
  document.querySelectorAll("textarea[data-counter]").forEach(function (area) {
    var out = document.getElementById(area.getAttribute("data-counter"));
    if (!out) return;
    var limit = parseInt(out.getAttribute("data-limit") || "0", 10);
    var update = function () {
      var length = Array.from(area.value).length;
      out.textContent = length + (limit ? " / " + limit : "") + " characters";
      out.classList.toggle("over", limit > 0 && length > limit);
    };
    area.addEventListener("input", update);
    update();
  });
})();
