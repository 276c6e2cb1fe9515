"""Daytona's signed file URLs (`/sandbox/{id}/signing-key`): to be built."""

from fastapi import APIRouter

router = APIRouter(prefix="", tags=["daytona"])
