"""Daytona's code interpreter (toolbox `/process/interpreter…`): to be built."""

from fastapi import APIRouter

router = APIRouter(prefix="/toolbox/{sandboxId}/process/interpreter", tags=["daytona-toolbox"])
