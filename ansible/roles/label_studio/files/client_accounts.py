"""The administrator's password and token, and the accounts of consumers off the hosts (label_studio_client_users).

Reads a JSON list of {email, password, token, administrator} on standard input (never argv). Each consumer
becomes a plain member of the organisation (neither staff nor superuser, which `label-studio init` would make
it); the administrator, which `label-studio init` made, keeps its rights. Every account gets exactly that
password and legacy API token: a password or token that changed on the controller (rotation) replaces the
old one, which then stops working. Prints the emails it changed, as JSON.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import django

django.setup()

from django.db import transaction  # noqa: E402 - Django must be set up first
from organizations.models import Organization  # noqa: E402
from rest_framework.authtoken.models import Token  # noqa: E402
from users.models import User  # noqa: E402


def converge(account: dict[str, Any], organization: Organization) -> bool:
    changed = False
    user = User.objects.filter(email=account["email"]).first()
    if user is None:
        if account.get("administrator"):
            sys.exit(f"no administrator {account['email']} in Label Studio: `label-studio init` makes it")
        user = User.objects.create_user(email=account["email"], password=account["password"])
        changed = True
    elif not user.check_password(account["password"]):
        user.set_password(account["password"])
        changed = True
    if not account.get("administrator") and (
        user.is_superuser or user.is_staff or user.active_organization_id != organization.id
    ):
        user.is_superuser = user.is_staff = False
        user.active_organization = organization
        changed = True
    user.save()
    if not organization.has_user(user):
        organization.add_user(user)
        changed = True
    if not Token.objects.filter(user=user, key=account["token"]).exists():
        Token.objects.filter(user=user).delete()
        Token.objects.create(user=user, key=account["token"])
        changed = True
    return changed


def main() -> None:
    accounts = json.load(sys.stdin)
    organization = Organization.objects.order_by("id").first()
    if organization is None:
        sys.exit("Label Studio has no organisation yet: `label-studio init` makes it with the administrator")
    changed = []
    for account in accounts:
        with transaction.atomic():
            if converge(account, organization):
                changed.append(account["email"])
    print(json.dumps({"changed": changed}))


if __name__ == "__main__":
    main()
