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

function watchProgress(box) {
  var url = box.getAttribute("data-progress-url");
  var note = box.querySelector(".live-note");
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
      if (value !== undefined && value !== null) {
        el.textContent = String(value);
        if (name === "status") { el.className = "badge badge-" + value; }
      }
    });
  }
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) { return; }
        show(data);
        if (data.status === "sending") { window.setTimeout(poll, 2000); }
        else if (data.status === "scheduled") { window.setTimeout(poll, 30000); }
        else if (note) { note.hidden = true; }
      })
      .catch(function () { window.setTimeout(poll, 10000); });
  }
  poll();
}

document.querySelectorAll("[data-progress-url]").forEach(function (box) {
  var status = box.getAttribute("data-status");
  if (status === "sending" || status === "scheduled" || status === "paused") { watchProgress(box); }
});
