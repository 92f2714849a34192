// Swagger UI for /api/docs, served from this app (no CDN). Same-origin requests send
// the session cookie; for changes, use "Authorize" with an API key.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({ url: "/api/openapi.json", dom_id: "#swagger-ui" });
});
