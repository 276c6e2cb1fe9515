"""Daytona's object storage push for build contexts (`/object-storage/push-access`): to be built."""

from fastapi import APIRouter

router = APIRouter(prefix="/object-storage", tags=["daytona"])
