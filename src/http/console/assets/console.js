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
