"""Daytona's warm pools (`/warm-pools`) over sandbay's: to be built."""

from fastapi import APIRouter

router = APIRouter(prefix="/warm-pools", tags=["daytona"])
