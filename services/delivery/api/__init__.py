"""HTTP endpoints of the delivery service, a module per aggregate (thin: the rules
live in links.py and reading.py one level up)."""

from services.delivery.api.links import deliveries
from services.delivery.api.reading import reading

ROUTERS = [deliveries, reading]
