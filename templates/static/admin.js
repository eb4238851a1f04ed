// Admin area: the only script. Asks before destructive actions (buttons with data-confirm),
// selects a one-time link on focus so it can be copied, and keeps a campaign's progress bar
// current by polling its JSON (the page works without it: it has a Refresh link).
"use strict";
document.addEventListener("submit", function (event) {
  var button = event.submitter;
  var message = button && button.getAttribute("data-confirm");
  if (message && !window.confirm(message)) {
    event.preventDefault();
  }
});
document.addEventListener("focusin", function (event) {
  if (event.target.classList && event.target.classList.contains("copy")) {
    event.target.select();
  }
});

function formatEta(seconds) {
  if (seconds === null || seconds === undefined) { return "—"; }
  var h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = Math.floor(seconds % 60);
  return h + ":" + String(m).padStart(2, "0") + ":" + String(s).padStart(2, "0");
}

// The progress box shows what the server says at every poll; when the campaign's status changes
// (sending -> sent, paused, cancelled, or a draft sent from elsewhere), the page is loaded again
// without its one-time notice, so the buttons and facts are the server's, never stale.
function watchProgress(box) {
  var url = box.getAttribute("data-progress-url");
  var initial = box.getAttribute("data-status");
  var note = box.querySelector(".live-note");
  var every = { sending: 1000, paused: 5000, scheduled: 15000, draft: 15000 };
  if (note) { note.hidden = false; }
  function show(data) {
    var bar = box.querySelector("progress");
    if (bar) {
      bar.max = data.total || 1;
      bar.value = data.total ? data.done : (data.status === "sent" ? 1 : 0);
      bar.textContent = data.percent + " %";
    }
    var fields = { percent: data.percent + " %", rate: data.rate === null ? "—" : data.rate.toFixed(1),
                   eta: formatEta(data.eta_seconds) };
    document.querySelectorAll("[data-field]").forEach(function (el) {
      var name = el.getAttribute("data-field");
      var value = name in fields ? fields[name] : data[name];
      if (value !== undefined && value !== null && el.textContent !== String(value)) {
        el.textContent = String(value);
      }
    });
  }
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) { window.setTimeout(poll, 10000); return; }
        if (data.status !== initial) {
          window.location.replace(window.location.pathname);
          return;
        }
        show(data);
        if (every[data.status]) { window.setTimeout(poll, every[data.status]); }
        else if (note) { note.hidden = true; }
      })
      .catch(function () { window.setTimeout(poll, 10000); });
  }
  poll();
}

document.querySelectorAll("[data-progress-url]").forEach(function (box) {
  var status = box.getAttribute("data-status");
  if (status !== "sent" && status !== "cancelled") { watchProgress(box); }
});

// The composer's audience figures, counted again by the server as the choices change.
document.querySelectorAll("form[data-audience-url]").forEach(function (form) {
  var pending = null;
  function recount() {
    var params = new URLSearchParams();
    form.querySelectorAll("input[name=audience]:checked, input[name=topics]:checked, input[name=article]:checked")
      .forEach(function (input) { params.append(input.name, input.value); });
    var body = form.querySelector("textarea[name=body]");
    params.append("body", body && body.value.trim() ? "1" : "0");
    fetch(form.getAttribute("data-audience-url") + "?" + params.toString(),
          { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) { return; }
        form.querySelectorAll("[data-audience]").forEach(function (el) {
          el.textContent = String(data[el.getAttribute("data-audience")]);
        });
      });
  }
  form.addEventListener("change", recount);
  form.addEventListener("input", function (event) {
    if (event.target.name !== "body") { return; }
    window.clearTimeout(pending);
    pending = window.setTimeout(recount, 400);
  });
});

// Settings: the preview follows the brand form as it is typed (the values go in the preview's
// query string; the server checks them and keeps the saved value for any that is not valid).
(function () {
  var form = document.getElementById("brand-form");
  var frame = document.querySelector("[data-preview-frame]");
  var select = document.querySelector("[data-preview-select]");
  if (!form || !frame || !select) { return; }
  var fields = ["org_name", "accent_color", "postal_address", "footer_text", "blog_url"];
  var timer = null;
  function update() {
    var query = new URLSearchParams();
    fields.forEach(function (name) {
      var input = form.elements[name];
      if (input) { query.set(name, input.value); }
    });
    frame.src = "/admin/settings/preview/" + encodeURIComponent(select.value) + ".html?" + query.toString();
  }
  function soon() {
    window.clearTimeout(timer);
    timer = window.setTimeout(update, 400);
  }
  form.addEventListener("input", soon);
  select.addEventListener("change", update);
})();
