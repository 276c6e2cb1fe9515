"""Daytona's PTY sessions (toolbox `/process/pty…`): to be built."""

from fastapi import APIRouter

router = APIRouter(prefix="/toolbox/{sandboxId}/process/pty", tags=["daytona-toolbox"])
