// govledger console: small conveniences on top of pages that work without
// JavaScript. No inline script is allowed (Content-Security-Policy), so
// behaviour lives here, keyed by data- attributes.
"use strict";
document.addEventListener("change", function (event) {
  var el = event.target;
  if (el && el.matches && el.matches("[data-autosubmit]") && el.form) {
    el.form.requestSubmit();
  }
});
// A "Copy" button next to a value shown once: copies it to the clipboard.
document.addEventListener("click", function (event) {
  var button = event.target.closest ? event.target.closest("[data-copy]") : null;
  if (!button) return;
  var field = document.getElementById(button.getAttribute("data-copy"));
  if (!field) return;
  field.select();
  if (navigator.clipboard) {
    navigator.clipboard.writeText(field.value).then(function () { button.textContent = "Copied"; });
  }
});
