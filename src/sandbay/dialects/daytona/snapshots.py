"""Daytona's snapshots (`/snapshots…`): to be built."""

from fastapi import APIRouter

router = APIRouter(prefix="/snapshots", tags=["daytona"])
