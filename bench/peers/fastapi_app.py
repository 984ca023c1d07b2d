"""FastAPI behind Mangum: pydantic models for the body and the response, a boto3 resource."""

import os
import uuid
from datetime import UTC, datetime
from typing import Any

import boto3
from fastapi import FastAPI, HTTPException
from mangum import Mangum
from pydantic import BaseModel, Field

app = FastAPI(title="Items")

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


@app.get("/items/{item_id}", response_model=Item)
def get_item(item_id: str) -> Any:
    response = table.get_item(Key={"pk": f"T#{TENANT}", "sk": f"ITEM#{item_id}"})
    if "Item" not in response:
        raise HTTPException(status_code=404, detail="Item not found")
    return response["Item"]


@app.post("/items", response_model=Item, status_code=201)
def create_item(item: ItemCreate) -> Any:
    now = datetime.now(UTC).isoformat()
    created = Item(id=str(uuid.uuid4()), version=1, created_at=now, updated_at=now, **item.model_dump())
    table.put_item(Item={"pk": f"T#{TENANT}", "sk": f"ITEM#{created.id}", **created.model_dump()})
    return created


handler = Mangum(app, lifespan="off")
