"""HTTP endpoints of the access service (thin: rules live in service.py)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
