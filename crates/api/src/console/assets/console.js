// The support console's only script: the merge's Confirm button stays disabled until the
// target's id is typed exactly (the server checks it again). No inline script anywhere: the
// Content-Security-Policy allows only this file.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var typed = document.querySelector("input[data-expect]");
  if (!typed) { return; }
  var button = typed.form.querySelector("button[type=submit]");
  var update = function () { button.disabled = typed.value.trim() !== typed.dataset.expect; };
  typed.addEventListener("input", update);
  update();
});
