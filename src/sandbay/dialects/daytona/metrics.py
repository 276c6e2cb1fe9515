"""Daytona's sandbox metrics (toolbox `/system/metrics`, telemetry): to be built."""

from fastapi import APIRouter

router = APIRouter(tags=["daytona"])
