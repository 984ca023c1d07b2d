"""Powertools for AWS Lambda: REST resolver with data validation, Logger, Metrics and Tracer.

Laid out like the Powertools documentation's examples. Tracer is disabled by the benchmark
(``POWERTOOLS_TRACE_DISABLED=true``, and it disables itself outside Lambda anyway): the X-Ray SDK is
still imported, but botocore is not patched and no segment is sent.
"""

import os
import uuid
from datetime import UTC, datetime
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Field

tracer = Tracer(service="items")
logger = Logger(service="items")
metrics = Metrics(namespace="Items", service="items")
app = APIGatewayRestResolver(enable_validation=True)

table = boto3.resource("dynamodb").Table(os.environ["TABLE_NAME"])
TENANT = os.environ.get("BENCH_TENANT", "default")


class ItemCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    tags: list[str] = Field(default_factory=list, max_length=20)
    data: dict[str, Any] = Field(default_factory=dict)


class Item(ItemCreate):
    id: str
    version: int
    created_at: str
    updated_at: str


@app.get("/items/<item_id>")
@tracer.capture_method
def get_item(item_id: str) -> Item:
    response = table.get_item(Key={"pk": f"T#{TENANT}", "sk": f"ITEM#{item_id}"})
    if "Item" not in response:
        raise NotFoundError(f"Item {item_id} not found")
    metrics.add_metric(name="ItemRead", unit=MetricUnit.Count, value=1)
    return Item.model_validate(response["Item"])


@app.post("/items")
@tracer.capture_method
def create_item(item: ItemCreate) -> Response[Item]:
    now = datetime.now(UTC).isoformat()
    created = Item(id=str(uuid.uuid4()), version=1, created_at=now, updated_at=now, **item.model_dump())
    table.put_item(Item={"pk": f"T#{TENANT}", "sk": f"ITEM#{created.id}", **created.model_dump()})
    logger.info("item created", item_id=created.id)
    metrics.add_metric(name="ItemCreated", unit=MetricUnit.Count, value=1)
    return Response(status_code=201, content_type=content_types.APPLICATION_JSON, body=created)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
