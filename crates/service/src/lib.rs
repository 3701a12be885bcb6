//! psf-service: the HTTP server (sessions, uploaded evaluation keys, encrypted jobs, limits,
//! typed JSON errors) and the client library that talks to it (DESIGN.md §5).
