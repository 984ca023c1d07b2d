"""Invite people into a tenant, list a tenant's people, disable or enable a person.

    python -m tools.users --local invite ana@example.com --tenant acme   # against `make run`
    python -m tools.users --stage prod invite ana@example.com --tenant acme
    python -m tools.users --local list acme
    python -m tools.users --local disable ana@example.com
    python -m tools.users --local enable ana@example.com

A person's tenant is the pool group ``tenant:<tenant>`` (docs/AUTH.md): only this tool (an
administrator's AWS credentials) puts anyone into one. ``invite`` creates the account with a
temporary password the pool e-mails (or, with ``--password``, a permanent one, printed nowhere),
or moves an existing account into the tenant. ``disable`` also signs the person out everywhere:
the pool stops honouring their tokens at once, so the authorizer refuses them (401) as soon as
API Gateway's cached answer (60 s) runs out.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
from typing import Any

from chalicelib.auth.tokens import TENANT_GROUP_PREFIX as GROUP_PREFIX
from chalicelib.limits import ID_PATTERN
from tools import target

TENANT = re.compile(ID_PATTERN)


class UserRequestError(ValueError):
    """The request cannot be carried out as asked (bad tenant, unknown person)."""


def _group(cognito: Any, pool_id: str, tenant: str) -> str:
    if not TENANT.match(tenant):
        raise UserRequestError("a tenant is 1-64 letters, digits, '-' or '_'")
    name = GROUP_PREFIX + tenant
    with contextlib.suppress(cognito.exceptions.GroupExistsException):
        cognito.create_group(UserPoolId=pool_id, GroupName=name, Description=f"people of tenant {tenant}")
    return name


def _tenant_groups(cognito: Any, pool_id: str, username: str) -> list[str]:
    groups = cognito.admin_list_groups_for_user(UserPoolId=pool_id, Username=username)["Groups"]
    return [g["GroupName"] for g in groups if g["GroupName"].startswith(GROUP_PREFIX)]


def invite(cognito: Any, pool_id: str, email: str, tenant: str, password: str | None = None) -> dict[str, str]:
    """Make ``email`` a person of ``tenant`` (and of no other tenant); returns what was done."""
    group = _group(cognito, pool_id, tenant)
    try:
        options: dict[str, Any] = {"MessageAction": "SUPPRESS"} if password else {"DesiredDeliveryMediums": ["EMAIL"]}
        cognito.admin_create_user(
            UserPoolId=pool_id, Username=email,
            UserAttributes=[{"Name": "email", "Value": email}, {"Name": "email_verified", "Value": "true"}],
            **options,
        )
        action = "invited"
    except cognito.exceptions.UsernameExistsException:
        action = "moved"
    if password:
        cognito.admin_set_user_password(UserPoolId=pool_id, Username=email, Password=password, Permanent=True)
    for other in _tenant_groups(cognito, pool_id, email):
        if other != group:
            cognito.admin_remove_user_from_group(UserPoolId=pool_id, Username=email, GroupName=other)
    cognito.admin_add_user_to_group(UserPoolId=pool_id, Username=email, GroupName=group)
    if action == "moved":
        # Tokens name the groups they were issued with: sign the person out so the new tenant
        # takes effect at once instead of when their tokens expire.
        cognito.admin_user_global_sign_out(UserPoolId=pool_id, Username=email)
    return {"email": email, "tenant": tenant, "action": action}


def people(cognito: Any, pool_id: str, tenant: str) -> list[dict[str, Any]]:
    group = GROUP_PREFIX + tenant
    found: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"UserPoolId": pool_id, "GroupName": group}
    while True:
        try:
            page = cognito.list_users_in_group(**kwargs)
        except cognito.exceptions.ResourceNotFoundException:
            return found
        for user in page.get("Users", []):
            attributes = {a["Name"]: a["Value"] for a in user.get("Attributes", [])}
            found.append({"email": attributes.get("email", user["Username"]), "status": user.get("UserStatus", ""),
                          "enabled": bool(user.get("Enabled", True))})
        if not page.get("NextToken"):
            return found
        kwargs["NextToken"] = page["NextToken"]


def disable(cognito: Any, pool_id: str, email: str) -> dict[str, str]:
    try:
        cognito.admin_disable_user(UserPoolId=pool_id, Username=email)
        cognito.admin_user_global_sign_out(UserPoolId=pool_id, Username=email)
    except cognito.exceptions.UserNotFoundException as exc:
        raise UserRequestError(f"no person {email}") from exc
    return {"email": email, "action": "disabled"}


def enable(cognito: Any, pool_id: str, email: str) -> dict[str, str]:
    try:
        cognito.admin_enable_user(UserPoolId=pool_id, Username=email)
    except cognito.exceptions.UserNotFoundException as exc:
        raise UserRequestError(f"no person {email}") from exc
    return {"email": email, "action": "enabled"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.users", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    target.add_arguments(parser)
    parser.add_argument("--user-pool-id", help="the pool, with --table (otherwise the stage's UserPoolId output)")
    commands = parser.add_subparsers(dest="command", required=True)
    invited = commands.add_parser("invite", help="create a person (or move one) into a tenant")
    invited.add_argument("email")
    invited.add_argument("--tenant", required=True)
    invited.add_argument("--password", help="a permanent password instead of an e-mailed temporary one")
    listing = commands.add_parser("list", help="list a tenant's people")
    listing.add_argument("tenant")
    for name, what in (("disable", "disable a person and sign them out everywhere"), ("enable", "enable a person again")):
        commands.add_parser(name, help=what).add_argument("email")
    args = parser.parse_args(argv)

    import boto3

    pool_id = target.outputs(args).get("UserPoolId", "") or args.user_pool_id or ""
    if not pool_id:
        print("error: this stage has no user pool (UserPoolId)", file=sys.stderr)
        return 2
    cognito = boto3.client("cognito-idp")
    try:
        if args.command == "invite":
            print(json.dumps(invite(cognito, pool_id, args.email, args.tenant, args.password)))
        elif args.command == "list":
            for person in people(cognito, pool_id, args.tenant):
                print(json.dumps(person))
        else:
            print(json.dumps((disable if args.command == "disable" else enable)(cognito, pool_id, args.email)))
    except UserRequestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
