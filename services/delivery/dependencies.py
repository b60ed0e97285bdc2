"""FastAPI dependencies of the delivery service: its service object."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.delivery.components import app_components
from services.delivery.service import DeliveryService


async def get_delivery_service(request: Request) -> DeliveryService:
    # No session up front: the hot path opens none (its one write joins a group commit).
    return app_components(request.app).service


DeliveryServiceDep = Annotated[DeliveryService, Depends(get_delivery_service)]
