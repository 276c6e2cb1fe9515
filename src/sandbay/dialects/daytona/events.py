"""Daytona's event stream (Socket.IO at `/socket.io/`): to be built."""

from starlette.types import ASGIApp


def socket_io(app: ASGIApp) -> ASGIApp:
    """The app, with Daytona's Socket.IO endpoint in front of it (not built yet)."""
    return app
