"""Daytona's process sessions (toolbox `/process/session…`): to be built."""

from fastapi import APIRouter

router = APIRouter(prefix="/toolbox/{sandboxId}/process/session", tags=["daytona-toolbox"])
