// Small enhancements; every page works without them.
(function () {
  "use strict";

  document.documentElement.classList.add("js");

  // Phones: the menu and the account tools fold behind one button.
  var toggle = document.querySelector(".menu-toggle");
  if (toggle) {
    toggle.hidden = false;
    toggle.addEventListener("click", function () {
      var open = document.body.classList.toggle("menu-open");
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
    });
  }

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

  // What a message text costs, asked of the server as it is typed: the same encoding and
  // part rules as the send. data-counter names the element the answer goes in.
  document.querySelectorAll("textarea[data-counter]").forEach(function (area) {
    var out = document.getElementById(area.getAttribute("data-counter"));
    var url = area.getAttribute("data-analyze-url");
    if (!out || !url || !window.fetch) return;
    var timer = null;
    var ask = function () {
      fetch(url + "?text=" + encodeURIComponent(area.value), { credentials: "same-origin" })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (info) {
          if (!info) return;
          out.textContent = info.summary;
          out.classList.toggle("over", info.over_limit);
        })
        .catch(function () { /* the preview still checks everything */ });
    };
    area.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(ask, 200);
    });
    ask();
  });

  // The browser's time zone, so "Send later" means the time the user sees on their clock.
  document.querySelectorAll("input[data-timezone]").forEach(function (input) {
    try {
      if (!input.value) input.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    } catch (e) { /* UTC then */ }
  });

  // A segment form shows how many contacts match as the criteria change.
  document.querySelectorAll("form[data-count-url]").forEach(function (form) {
    var out = document.getElementById(form.getAttribute("data-count-target"));
    if (!out || !window.fetch) return;
    var timer = null;
    var ask = function () {
      var query = new URLSearchParams(new FormData(form));
      query.delete("csrfmiddlewaretoken");
      fetch(form.getAttribute("data-count-url") + "?" + query.toString(), { credentials: "same-origin" })
        .then(function (response) { return response.json(); })
        .then(function (answer) { out.textContent = answer.summary; })
        .catch(function () { /* the saved segment shows its count */ });
    };
    var later = function () { clearTimeout(timer); timer = setTimeout(ask, 250); };
    form.addEventListener("input", later);
    form.addEventListener("change", later);
    ask();
  });

  // The send form shows what its first recipients get (placeholders filled), their parts and
  // the cost, asked of the server as the form changes; the preview step checks it all again.
  document.querySelectorAll("form[data-preview-url]").forEach(function (form) {
    var box = document.getElementById(form.getAttribute("data-preview-target"));
    if (!box || !window.fetch || !window.URLSearchParams) return;
    var summary = box.querySelector("[data-preview-summary]");
    var list = box.querySelector("[data-preview-list]");
    var timer = null;
    var show = function (answer) {
      box.hidden = false;
      list.textContent = "";
      if (!answer.ok) {
        summary.textContent = answer.problems.join(" ");
        return;
      }
      summary.textContent = answer.summary;
      answer.recipients.forEach(function (row) {
        var item = document.createElement("li");
        var head = document.createElement("span");
        head.className = "cell-sub mono";
        head.textContent = row.phone + " · " + row.segments + " part" + (row.segments === 1 ? "" : "s") + " · " + row.cost;
        var text = document.createElement("span");
        text.className = "text";
        text.textContent = row.text;
        item.appendChild(head);
        item.appendChild(text);
        list.appendChild(item);
      });
    };
    var ask = function () {
      var query = new URLSearchParams(new FormData(form));
      query.delete("csrfmiddlewaretoken");
      query.delete("nonce");
      fetch(form.getAttribute("data-preview-url") + "?" + query.toString(), { credentials: "same-origin" })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (answer) { if (answer) show(answer); })
        .catch(function () { /* the preview step shows it all */ });
    };
    var later = function () { clearTimeout(timer); timer = setTimeout(ask, 400); };
    form.addEventListener("input", later);
    form.addEventListener("change", later);
  });

  // Uploads show their progress and cannot be sent twice; the answer replaces the page.
  document.querySelectorAll("form[data-upload]").forEach(function (form) {
    if (!window.XMLHttpRequest || !window.FormData) return;
    var button = form.querySelector("button[type=submit]");
    var bar = document.getElementById(form.getAttribute("data-upload"));
    var status = document.getElementById(form.getAttribute("data-upload-status"));
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (button) button.disabled = true;
      if (bar) { bar.hidden = false; bar.removeAttribute("value"); }
      if (status) status.textContent = "Uploading…";
      var request = new XMLHttpRequest();
      request.open("POST", form.action);
      request.upload.addEventListener("progress", function (e) {
        if (!e.lengthComputable) return;
        var percent = Math.round((100 * e.loaded) / e.total);
        if (bar) bar.value = percent;
        if (status) status.textContent = percent < 100 ? "Uploading… " + percent + "%" : "Uploaded; importing…";
      });
      request.addEventListener("load", function () {
        if (request.responseURL) window.history.replaceState(null, "", request.responseURL);
        document.open();
        document.write(request.responseText);
        document.close();
      });
      request.addEventListener("error", function () {
        if (button) button.disabled = false;
        if (status) status.textContent = "The upload failed: check the connection and try again.";
      });
      request.send(new FormData(form));
    });
  });
})();
