// Workbench keyboard shortcuts: a key presses the control that names it in data-keys
// (rate 1-5, u/d thumbs, a accept, r reject, g gold, j/k next/previous, e edit).
// Inside a text field keys type as usual; Ctrl+Enter saves the form, Escape leaves the field.
(function () {
  "use strict";
  document.addEventListener("keydown", function (event) {
    var target = event.target;
    if (target.closest && target.closest("input, textarea, select")) {
      if (event.key === "Escape") target.blur();
      if ((event.ctrlKey || event.metaKey) && event.key === "Enter" && target.form) {
        event.preventDefault();
        target.form.requestSubmit();
      }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var control = document.querySelector('[data-keys~="' + CSS.escape(event.key) + '"]');
    if (!control) return;
    event.preventDefault();
    if (control.matches("textarea, input")) {
      control.focus();
      control.select();
    } else {
      control.click();
    }
  });
})();
