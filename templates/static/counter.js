// Counts the characters of a textarea with data-max-chars as the person types, and says how
// many are too many, the way the server counts them (Unicode characters, trimmed). Without this
// script the hint still states the limit and the server refuses a longer text by its field.
"use strict";
(function () {
  function count(text) {
    return Array.from(text.normalize("NFC").trim()).length;
  }
  function sayCount(field, out) {
    var max = parseInt(field.getAttribute("data-max-chars"), 10);
    var used = count(field.value);
    var over = used > max;
    out.textContent = over
      ? (used - max).toLocaleString("en") + " characters too many (at most " + max.toLocaleString("en") + ")"
      : used.toLocaleString("en") + " of " + max.toLocaleString("en") + " characters";
    out.classList.toggle("error", over);
  }
  document.querySelectorAll("textarea[data-max-chars]").forEach(function (field) {
    var out = document.createElement("p");
    out.className = "hint char-count";
    out.id = field.id + "-count";
    out.setAttribute("aria-live", "polite");
    field.insertAdjacentElement("afterend", out);
    field.setAttribute("aria-describedby", ((field.getAttribute("aria-describedby") || "") + " " + out.id).trim());
    field.addEventListener("input", function () { sayCount(field, out); });
    sayCount(field, out);
  });
})();
