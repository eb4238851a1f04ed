/*
 * Tidings inquiry form for another site (the blog): no build step, no dependencies.
 *
 *   <form data-tidings-inquiry action="https://TIDINGS/contact" method="post"> ...fields... </form>
 *   <script src="https://TIDINGS/static/tidings-embed.js" defer></script>
 *
 * Without this script the form posts to /contact and the visitor confirms it there once. With
 * it, the form gets a signed form token from /api/form-token, is sent as JSON to
 * /api/inquiries, shows errors next to their fields (aria-invalid, aria-describedby, focus on
 * the first error) and is replaced by a thank-you message. See docs/inquiries.md.
 */
(function () {
  "use strict";

  var script = document.currentScript;
  var scriptBase = script && script.src ? script.src.replace(/\/static\/tidings-embed\.js(\?.*)?$/, "") : "";
  var ATTRIBUTION = ["utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content"];
  var BOOLEANS = { consent: true, newsletter: true };
  var DEFAULT_THANKS = "Thank you, your message has reached us. We have sent you a confirmation " +
    "email and will get back to you within one working day.";

  function baseOf(form) {
    return (form.getAttribute("data-tidings-base") || scriptBase).replace(/\/$/, "");
  }

  function hidden(form, name) {
    var input = form.querySelector('input[type="hidden"][name="' + name + '"]');
    if (!input) {
      input = document.createElement("input");
      input.type = "hidden";
      input.name = name;
      form.appendChild(input);
    }
    return input;
  }

  function fetchToken(form) {
    return fetch(baseOf(form) + "/api/form-token", { credentials: "omit", cache: "no-store" })
      .then(function (r) {
        if (!r.ok) { throw new Error("token " + r.status); }
        return r.json();
      })
      .then(function (body) { hidden(form, "form_token").value = body.form_token; });
  }

  /*
   * First touch of the visit: the utm fields of the page the visit came in on (a digest's
   * article link), kept in sessionStorage (this tab, this visit; no cookie, nothing kept after
   * the tab is closed) so that the contact page the reader goes to next sends them. Runs on
   * every page that loads this script, form or not. The referrer stays the form page's own
   * (on a two-page visit: the article the reader came from).
   */
  var VISIT_KEY = "tidings.visit";

  function rememberVisit() {
    var visit = {};
    try { visit = JSON.parse(window.sessionStorage.getItem(VISIT_KEY) || "{}") || {}; } catch (e) { visit = {}; }
    var params = new URLSearchParams(window.location.search);
    ATTRIBUTION.forEach(function (name) {
      if (!visit[name] && params.get(name)) { visit[name] = params.get(name).slice(0, 200); }
    });
    try { window.sessionStorage.setItem(VISIT_KEY, JSON.stringify(visit)); } catch (e) { /* storage off: this page only */ }
    return visit;
  }

  var visit = rememberVisit();

  function fillAttribution(form) {
    var source = hidden(form, "source_page");
    if (!source.value) { source.value = window.location.href; }
    var referrer = hidden(form, "referrer");
    if (!referrer.value) { referrer.value = document.referrer; }
    ATTRIBUTION.forEach(function (name) {
      var input = hidden(form, name);
      if (!input.value && visit[name]) { input.value = visit[name]; }
    });
  }

  function formMessage(form) {
    var box = form.querySelector(".tidings-form-message");
    if (!box) {
      box = document.createElement("div");
      box.className = "tidings-form-message";
      box.setAttribute("role", "alert");
      box.setAttribute("tabindex", "-1");
      form.insertBefore(box, form.firstChild);
    }
    return box;
  }

  function showFormMessage(form, text) {
    var box = formMessage(form);
    box.textContent = text;
    box.hidden = false;
    box.focus();
  }

  function controlsOf(form, name) {
    var el = form.elements.namedItem(name);
    if (!el) { return []; }
    if (typeof el.length === "number" && !el.tagName) { return Array.prototype.slice.call(el); }
    return [el];
  }

  function clearErrors(form) {
    Array.prototype.forEach.call(form.querySelectorAll(".tidings-error"), function (p) {
      var id = p.id;
      Array.prototype.forEach.call(form.querySelectorAll('[aria-describedby~="' + id + '"]'), function (c) {
        var ids = (c.getAttribute("aria-describedby") || "").split(/\s+/).filter(function (x) { return x && x !== id; });
        if (ids.length) { c.setAttribute("aria-describedby", ids.join(" ")); } else { c.removeAttribute("aria-describedby"); }
        c.removeAttribute("aria-invalid");
      });
      p.parentNode.removeChild(p);
    });
    var box = form.querySelector(".tidings-form-message");
    if (box) { box.hidden = true; box.textContent = ""; }
  }

  function showErrors(form, errors) {
    var first = null;
    var orphans = [];
    Object.keys(errors).forEach(function (name) {
      var controls = controlsOf(form, name).filter(function (c) { return c.type !== "hidden"; });
      if (!controls.length) { orphans.push(errors[name]); return; }
      var id = "tidings-error-" + name.replace(/[^a-z0-9_-]/gi, "");
      var p = document.createElement("p");
      p.className = "tidings-error";
      p.id = id;
      p.textContent = errors[name];
      var anchor = controls[0].closest("fieldset") || controls[0].closest("label") || controls[0];
      anchor.parentNode.insertBefore(p, anchor);
      controls.forEach(function (c) {
        var ids = (c.getAttribute("aria-describedby") || "").split(/\s+/).filter(Boolean);
        ids.push(id);
        c.setAttribute("aria-describedby", ids.join(" "));
        c.setAttribute("aria-invalid", "true");
      });
    });
    // focus the first invalid field in the order of the form
    Array.prototype.some.call(form.elements, function (el) {
      if (el.getAttribute("aria-invalid") === "true") { first = el; return true; }
      return false;
    });
    if (orphans.length) { showFormMessage(form, orphans.join(" ")); }
    if (first) { first.focus(); }
  }

  function payloadOf(form) {
    var data = {};
    Array.prototype.forEach.call(form.elements, function (el) {
      if (!el.name || el.disabled || el.type === "submit" || el.type === "button") { return; }
      if (BOOLEANS[el.name]) { data[el.name] = el.checked; return; }
      if ((el.type === "radio" || el.type === "checkbox") && !el.checked) { return; }
      if (!(el.name in data)) { data[el.name] = el.value; }
    });
    // The language of the answers and emails: the form's own `lang` field, else the blog page's.
    if (!data.lang && document.documentElement.lang) { data.lang = document.documentElement.lang; }
    return data;
  }

  function thank(form) {
    var box = document.createElement("div");
    box.className = "tidings-thanks";
    box.setAttribute("role", "status");
    box.setAttribute("tabindex", "-1");
    box.textContent = form.getAttribute("data-tidings-thanks") || DEFAULT_THANKS;
    form.parentNode.replaceChild(box, form);
    box.focus();
  }

  function send(form, button) {
    clearErrors(form);
    button && (button.disabled = true);
    form.setAttribute("aria-busy", "true");
    var done = function () {
      button && (button.disabled = false);
      form.removeAttribute("aria-busy");
    };
    fetch(baseOf(form) + "/api/inquiries", {
      method: "POST",
      credentials: "omit",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify(payloadOf(form))
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (body) { return { status: r.status, body: body }; });
    }).then(function (res) {
      done();
      if (res.status === 201 || res.status === 202) { thank(form); return; }
      if (res.status === 422 && res.body.errors) {
        if (res.body.errors.form_token) {  // the form was open too long: a new token, answers kept
          showFormMessage(form, res.body.errors.form_token);
          fetchToken(form).catch(function () {});
          return;
        }
        showErrors(form, res.body.errors);
        return;
      }
      showFormMessage(form, res.body.error || "Sorry, your message could not be sent. Please try again in a moment; your answers are still here.");
    }).catch(function () {
      done();
      showFormMessage(form, "Your message could not be sent: please check your connection and try again. Your answers are still here.");
    });
  }

  function enhance(form) {
    form.noValidate = true;
    fillAttribution(form);
    var ready = fetchToken(form);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var button = event.submitter || form.querySelector('[type="submit"]');
      ready.then(function () { send(form, button); }, function () {
        ready = fetchToken(form);
        ready.then(function () { send(form, button); }, function () {
          form.submit();  // no token from here: the plain HTML path (confirmed once on /contact)
        });
      });
    });
  }

  function init() {
    Array.prototype.forEach.call(document.querySelectorAll("form[data-tidings-inquiry]"), enhance);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
