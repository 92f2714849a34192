// Small progressive enhancements; every page also works without JavaScript.
document.addEventListener("htmx:configRequest", function (event) {
  var meta = document.querySelector("meta[name=csrf-token]");
  if (meta && meta.content) { event.detail.headers["X-CSRF-Token"] = meta.content; }
});
