"""The REST API of the server (``/api/v1``): see `avctl.server.api.app.create_app`."""
