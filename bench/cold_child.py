"""One cold start, in a fresh process: ``app`` (the Lambda entry point) or ``floor`` (raw GetItem).

Prints the milliseconds from before the first import to the first answer. Interpreter start-up is
the same for both and is not counted.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import json
import os
import sys


def main() -> None:
    mode = sys.argv[1]
    tenant, item_id = os.environ["BENCH_TENANT"], os.environ["BENCH_ITEM"]
    if mode == "floor":
        import boto3

        client = boto3.client("dynamodb")
        item = client.get_item(
            TableName=os.environ["TABLE_NAME"], Key={"pk": {"S": f"T#{tenant}"}, "sk": {"S": f"ITEM#{item_id}"}}
        )["Item"]
        assert item
    else:
        sys.path.insert(0, os.getcwd())
        import app
        from bench.events import api_event, lambda_context

        response = app.app(api_event("GET", "/items/{item_id}", f"/items/{item_id}", tenant, {"item_id": item_id}),
                           lambda_context())
        assert response["statusCode"] == 200, response
    elapsed = (time.perf_counter() - STARTED) * 1000
    print(json.dumps({"ms": elapsed, "modules": len(sys.modules)}))


main()
