"""Issue, list and revoke API keys.

    python -m tools.apikeys --local create acme            # against `make run`
    python -m tools.apikeys --stage prod create acme       # against a deployed stage (AWS credentials)
    python -m tools.apikeys --local list acme
    python -m tools.apikeys --local revoke acme key_0123456789ab

A new key is printed once and never again: only its SHA-256 hash is stored.
"""

from __future__ import annotations

import argparse
import json
import sys

from tools import target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.apikeys", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    target.add_arguments(parser)
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="issue a new key for a tenant")
    create.add_argument("tenant")
    create.add_argument("--label", default="", help="a note to recognise the key by")
    create.add_argument("--key", help="use this key instead of a random one (16-128 printable ASCII)")
    listing = commands.add_parser("list", help="list a tenant's keys (ids and labels, never the keys)")
    listing.add_argument("tenant")
    revoke = commands.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("tenant")
    revoke.add_argument("key_id")
    args = parser.parse_args(argv)

    from chalicelib.auth import apikeys

    table = target.outputs(args)["TableName"]
    if args.command == "create":
        try:
            key_id, key = apikeys.create(table, args.tenant, key=args.key, label=args.label)
        except apikeys.InvalidKeyRequest as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(json.dumps({"tenant": args.tenant, "key_id": key_id, "key": key}))
        return 0
    if args.command == "list":
        for record in apikeys.list_keys(table, args.tenant):
            print(json.dumps(record))
        return 0
    if not apikeys.revoke(table, args.tenant, args.key_id):
        print(f"error: tenant {args.tenant} has no key {args.key_id}", file=sys.stderr)
        return 1
    print(json.dumps({"revoked": args.key_id}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
