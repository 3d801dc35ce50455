"""Users, roles, browser sessions, API tokens, CSRF and the login rate limit of the server."""
