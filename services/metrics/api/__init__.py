"""HTTP endpoints of the metrics service, a module per aggregate: the figures
(`/v1/metrics`) and the dashboard page that reads them."""

from services.metrics.api.dashboard import dashboard
from services.metrics.api.figures import metrics

ROUTERS = [metrics, dashboard]
