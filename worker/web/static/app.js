// Small progressive enhancements; every page also works without JavaScript.
document.addEventListener("htmx:configRequest", function (event) {
  var meta = document.querySelector("meta[name=csrf-token]");
  if (meta && meta.content) { event.detail.headers["X-CSRF-Token"] = meta.content; }
});

// "Copy link" buttons: copy the value of the element named by data-copy.
document.addEventListener("click", function (event) {
  var button = event.target.closest("button.copy[data-copy]");
  if (!button) { return; }
  var source = document.querySelector(button.dataset.copy);
  if (!source) { return; }
  var done = function () { button.textContent = "Copied"; };
  source.select();
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(source.value).then(done, function () {
      if (document.execCommand("copy")) { done(); }
    });
  } else if (document.execCommand("copy")) {
    done();
  }
});
