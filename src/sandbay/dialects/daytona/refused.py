"""The Daytona SDK's routes sandbay refuses on purpose, each a clear 400 saying why: to be built."""

from fastapi import APIRouter

router = APIRouter(prefix="", tags=["daytona"])
