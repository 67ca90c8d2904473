// Switches the current account as soon as another one is chosen in the top bar (the form's button is for browsers
// without JavaScript). A file rather than an onchange attribute: the Content-Security-Policy runs no inline code.
document.addEventListener("DOMContentLoaded", function () {
  var select = document.getElementById("account-select");
  if (select) select.addEventListener("change", function () { select.form.submit(); });
});
