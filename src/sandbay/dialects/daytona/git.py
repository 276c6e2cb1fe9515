"""Daytona's git toolbox (`/git/…`): to be built."""

from fastapi import APIRouter

router = APIRouter(prefix="/toolbox/{sandboxId}/git", tags=["daytona-toolbox"])
