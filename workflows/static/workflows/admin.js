/* Behaviour htmx does not give for free: confirm before an action, keep the selected cell
   marked across live refreshes, keep a log that is scrolled to the bottom at the bottom,
   close the step panel, open the panel a link names (#step=KEY), and tell the server the
   reader's time zone (cookie wf_tz, read by workflows/middleware.py). No framework; htmx does
   the requests. */
(function () {
  "use strict";

  var selected = null; // {run, step}

  function markSelected() {
    document.querySelectorAll(".mx-cell.is-selected").forEach(function (el) {
      el.classList.remove("is-selected");
    });
    if (!selected) return;
    document.querySelectorAll(
      '.mx-cell[data-run="' + selected.run + '"][data-step="' + CSS.escape(selected.step) + '"]'
    ).forEach(function (el) {
      el.classList.add("is-selected");
    });
  }

  document.addEventListener("click", function (event) {
    var cell = event.target.closest("button.mx-cell[data-run]");
    if (cell) {
      selected = { run: cell.dataset.run, step: cell.dataset.step };
      markSelected();
      return;
    }
    if (event.target.closest("[data-panel-close]")) {
      var panel = document.getElementById("step-panel");
      var placeholder = document.getElementById("wf-panel-placeholder");
      if (panel) panel.innerHTML = placeholder ? placeholder.innerHTML : "";
      selected = null;
      markSelected();
    }
  });

  // Confirm before actions that change runs or releases (a form or its submit button may ask).
  // A browser driven by automation (navigator.webdriver) cannot answer a native dialog unless
  // its script expects one, so there the action submits directly (the comment field and the
  // server-side checks still apply); a script that wants the dialog sets
  // window.WF_CONFIRM_UNDER_AUTOMATION = true.
  function shouldConfirm() {
    return !navigator.webdriver || window.WF_CONFIRM_UNDER_AUTOMATION === true;
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var button = event.submitter;
    // A choice may carry its own question (the retry's "from step" options name what they reuse).
    var choice = form.querySelector("select[data-confirm-by-option]");
    var option = choice && choice.selectedOptions[0];
    var question = (button && button.dataset.confirm) || (option && option.dataset.confirm) ||
      form.dataset.confirm;
    if (question && shouldConfirm() && !window.confirm(question)) {
      event.preventDefault();
      return;
    }
    if (button) {
      // Avoid double submits while the page navigates.
      window.setTimeout(function () { button.disabled = true; }, 0);
    }
  });

  // Logs: follow the tail when the reader is at the bottom.
  var atBottom = true;
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var target = event.detail && event.detail.target;
    if (target && target.id === "sp-log-lines") {
      atBottom = target.scrollHeight - target.scrollTop - target.clientHeight < 24;
    }
  });
  document.addEventListener("htmx:oobAfterSwap", function (event) {
    var log = document.getElementById("sp-log-lines");
    if (log && atBottom) log.scrollTop = log.scrollHeight;
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    markSelected();
    var target = event.detail && event.detail.target;
    if (target && target.id === "step-panel") {
      var log = document.getElementById("sp-log-lines");
      if (log) log.scrollTop = log.scrollHeight;
    }
  });

  // A polled fragment that answers an error (e.g. after logging out) must not blank the page.
  document.addEventListener("htmx:responseError", function (event) {
    var target = event.detail && event.detail.target;
    if (target && target.id === "step-panel" && event.detail.xhr) {
      target.innerHTML = '<div class="sp-placeholder"><p>Could not load this step (HTTP ' +
        event.detail.xhr.status + ").</p></div>";
    }
  });

  function openTarget() {
    var target = window.location.hash && document.getElementById(window.location.hash.slice(1));
    if (target && target.tagName === "DETAILS") target.open = true;
  }
  window.addEventListener("hashchange", openTarget);

  document.addEventListener("DOMContentLoaded", function () {
    openTarget();
    var panel = document.getElementById("step-panel");
    if (panel && !document.getElementById("wf-panel-placeholder")) {
      var keep = document.createElement("template");
      keep.id = "wf-panel-placeholder";
      keep.innerHTML = panel.innerHTML;
      document.body.appendChild(keep);
    }
  });

  // The reader's time zone, for the pages' times (the server renders them; from the next page
  // on they are in this zone). Only an IANA name the browser itself reports is sent.
  (function rememberTimeZone() {
    var zone = "";
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { return; }
    if (!zone || !/^[A-Za-z0-9_+\-\/]{1,64}$/.test(zone)) return;
    var current = document.cookie.split("; ").filter(function (c) {
      return c.indexOf("wf_tz=") === 0;
    })[0];
    if (current === "wf_tz=" + zone) return;
    document.cookie = "wf_tz=" + zone + "; path=/; max-age=31536000; SameSite=Lax";
  })();

  // A link to a step of a run (a reused step's source) ends in #step=KEY: open that panel.
  window.addEventListener("load", function () {
    var match = /^#step=([a-z0-9_]+)$/.exec(window.location.hash);
    if (!match) return;
    var button = document.querySelector(
      '#run-live button[data-step="' + CSS.escape(match[1]) + '"][hx-get]'
    );
    if (button) button.click();
  });
})();
