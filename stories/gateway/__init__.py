"""One origin for the whole platform (#22), as the load balancer gives it in AWS.

A frontend calls one address. In AWS the ALB forwards each path to its service by
the rules of `stories.deployment.PUBLIC_ROUTES`; here the same table drives:

- proxy.py: `Gateway`, the reverse proxy `stories up` serves on port 8000;
- nginx.py: `nginx_conf()`, the configuration of compose's gateway container,
  checked in as infra/gateway/nginx.conf (tests/platform/test_gateway.py keeps it
  current);
- openapi.py: `platform_openapi()`, one OpenAPI document with every public route of
  every service, checked in as infra/gateway/openapi.json: the gateway serves it at
  /openapi.json and the TypeScript client (clients/typescript) is generated from it.

Internal paths (/v1/decisions, /metrics, /readyz) and paths no rule takes get the
ALB's own 404. CORS is answered here, once, for the gateway's origin: preflights
never reach a service, and a service's own CORS headers are replaced by the
gateway's.
"""
