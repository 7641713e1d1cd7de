// The API docs page (/docs): Swagger UI over this server's own /openapi.json, from files in the
// package (no CDN), started from this file because the Content-Security-Policy allows no inline script.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    persistAuthorization: false,
    validatorUrl: null,  // the default badge asks validator.swagger.io: nothing leaves the network
  });
});
