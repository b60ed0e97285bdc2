"""HTTP endpoints of the content service, a module per aggregate (thin: the rules
live in submissions.py, books.py and catalog.py one level up)."""

from services.content.api.assets import assets
from services.content.api.books import books
from services.content.api.catalog import catalog, families
from services.content.api.opds import opds
from services.content.api.submissions import derivations, submissions

ROUTERS = [books, catalog, families, submissions, derivations, opds, assets]
