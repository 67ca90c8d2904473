// Suggests a slug from the event name as the user types, until the user edits the slug by hand.
// The server still validates the slug; this only saves typing.
(function () {
  "use strict";
  document.querySelectorAll("[data-slug-source]").forEach(function (nameInput) {
    var slugInput = document.getElementById(nameInput.getAttribute("data-slug-source"));
    if (!slugInput) return;
    var touched = slugInput.value !== "";
    function slugify(text) {
      return text
        .normalize("NFKD").replace(/[\u0300-\u036f]/g, "")
        .toLowerCase()
        .replace(/[^a-z0-9]+/g, "-")
        .replace(/^-+|-+$/g, "")
        .slice(0, 100);
    }
    slugInput.addEventListener("input", function () { touched = slugInput.value !== ""; });
    nameInput.addEventListener("input", function () {
      if (!touched) slugInput.value = slugify(nameInput.value);
    });
  });
})();
