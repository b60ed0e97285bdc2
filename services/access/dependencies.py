"""FastAPI dependencies of the access service: its aggregates' services, per request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from services.access.accounts import AccountService
from services.access.class_accounts import ClassAccounts
from services.access.classes import ClassService
from services.access.components import ComponentsDep, account_service
from services.access.consent import ConsentService
from services.access.data_export import ExportService
from services.access.decisions import DecisionService
from services.access.entitlements import EntitlementService
from services.access.erasure import Erasure
from services.access.users import UserAdministration
from shared.service.deps import ResourcesDep, SessionDep


async def get_account_service(
    session: SessionDep, resources: ResourcesDep, components: ComponentsDep
) -> AccountService:
    return account_service(components, resources, session)


AccountServiceDep = Annotated[AccountService, Depends(get_account_service)]


async def get_entitlement_service(accounts: AccountServiceDep) -> EntitlementService:
    return EntitlementService(accounts)


async def get_decision_service(accounts: AccountServiceDep) -> DecisionService:
    return DecisionService(accounts)


async def get_class_service(accounts: AccountServiceDep) -> ClassService:
    return ClassService(accounts)


async def get_user_administration(accounts: AccountServiceDep) -> UserAdministration:
    return UserAdministration(accounts)


async def get_class_accounts(accounts: AccountServiceDep) -> ClassAccounts:
    return ClassAccounts(accounts)


async def get_consent_service(accounts: AccountServiceDep) -> ConsentService:
    return ConsentService(accounts)


ConsentServiceDep = Annotated[ConsentService, Depends(get_consent_service)]


async def get_erasure(accounts: AccountServiceDep) -> Erasure:
    return Erasure(accounts)


ErasureDep = Annotated[Erasure, Depends(get_erasure)]


async def get_export_service(accounts: AccountServiceDep) -> ExportService:
    return ExportService(accounts)


ExportServiceDep = Annotated[ExportService, Depends(get_export_service)]
EntitlementServiceDep = Annotated[EntitlementService, Depends(get_entitlement_service)]
ClassServiceDep = Annotated[ClassService, Depends(get_class_service)]
ClassAccountsDep = Annotated[ClassAccounts, Depends(get_class_accounts)]
UserAdministrationDep = Annotated[UserAdministration, Depends(get_user_administration)]
DecisionServiceDep = Annotated[DecisionService, Depends(get_decision_service)]
