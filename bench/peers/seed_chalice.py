"""The seed-style Chalice sample: a boto3 resource at import, one route, no auth, no validation."""

import os

import boto3
from chalice import Chalice, NotFoundError

app = Chalice(app_name="items")

dynamodb = boto3.resource("dynamodb")
table = dynamodb.Table(os.environ["TABLE_NAME"])
TENANT = os.environ.get("BENCH_TENANT", "default")


@app.route("/items/{item_id}", methods=["GET"])
def get_item(item_id):
    response = table.get_item(Key={"pk": f"T#{TENANT}", "sk": f"ITEM#{item_id}"})
    if "Item" not in response:
        raise NotFoundError(f"Item {item_id} not found")
    return response["Item"]
