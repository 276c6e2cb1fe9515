"""Liveness, for scripts and load balancers (no authentication)."""

from fastapi import APIRouter

import sandbay

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok", "version": sandbay.__version__}
