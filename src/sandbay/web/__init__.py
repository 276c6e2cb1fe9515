"""The web dashboard, served at `/` by the API's own server (same origin, so it works
behind the same reverse proxy). Server-rendered page shells (Jinja2) with small
vanilla scripts that call the native API (`/v1/…`) with the session cookie: no
front-end framework and no build step, only vendored files copied at set-up."""
