"""FastAPI dependencies of the delivery service: its service object."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.delivery.service import DeliveryComponents, DeliveryService


async def get_delivery_service(request: Request) -> DeliveryService:
    # Built per request from long-lived parts; no session up front: the hot
    # path opens none (its one write joins a group commit).
    components: DeliveryComponents = request.app.state.delivery
    return DeliveryService(components)


DeliveryServiceDep = Annotated[DeliveryService, Depends(get_delivery_service)]
