"""Shared volumes of an organization (Daytona's volumes)."""
