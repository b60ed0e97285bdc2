"""HTTP endpoints of the access service, a module per aggregate (thin: the rules
live in accounts.py, entitlements.py, classes.py and decisions.py one level up)."""

from services.access.api.auth import auth, jwks
from services.access.api.classes import class_auth, classes
from services.access.api.consents import consents
from services.access.api.decisions import decisions
from services.access.api.entitlements import entitlements
from services.access.api.next_books import next_books
from services.access.api.users import users

# In this order in the OpenAPI document (and so in the generated client).
ROUTERS = [decisions, users, next_books, entitlements, classes, auth, class_auth, consents, jwks]
