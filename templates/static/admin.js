// Admin area: the only script. Asks before destructive actions (buttons with data-confirm)
// and selects a one-time link on focus so it can be copied. Everything works without it.
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
