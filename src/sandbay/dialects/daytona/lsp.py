"""Daytona's language servers (toolbox `/lsp/…`): to be built."""

from fastapi import APIRouter

router = APIRouter(prefix="/toolbox/{sandboxId}/lsp", tags=["daytona"])
