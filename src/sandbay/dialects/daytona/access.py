"""Daytona's preview links, signed preview URLs and SSH access: to be built."""

from fastapi import APIRouter

router = APIRouter(prefix="", tags=["daytona"])
