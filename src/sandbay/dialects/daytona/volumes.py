"""Daytona's volumes (`/volumes…`): to be built."""

from fastapi import APIRouter

router = APIRouter(prefix="/volumes", tags=["daytona"])
