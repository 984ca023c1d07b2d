"""Attachments: routes, the storage-event handler's checks, deletes, incarnations of an item."""

from __future__ import annotations

import base64
import json
import os
import urllib.parse

import boto3
import pytest

from tests.unit.eventkit import s3_event

PNG = "image/png"


def body_of(response):
    return json.loads(response.body)


@pytest.fixture
def s3():
    return boto3.client("s3")


@pytest.fixture
def item(tenant):
    response = tenant.request("POST", "/items", {"name": "with files"})
    assert response.status_code == 201
    return body_of(response)


def attach(tenant, item_id, **overrides):
    body = {"filename": "scan.png", "content_type": PNG, "size": 4, **overrides}
    return tenant.request("POST", f"/items/{item_id}/attachments", body)


def store(s3, attachment, content: bytes, content_type: str) -> str:
    """What the browser's form POST does: the object lands under the form's key."""
    key = attachment["upload"]["fields"]["key"]
    s3.put_object(Bucket=os.environ["BUCKET_NAME"], Key=key, Body=content, ContentType=content_type)
    return key


def deliver(client, *keys):
    client.lambda_.invoke("on_attachment_uploaded", s3_event(*keys))


def exists(s3, key):
    return s3.list_objects_v2(Bucket=os.environ["BUCKET_NAME"], Prefix=key).get("KeyCount", 0) > 0


def test_create_returns_a_form_pinned_to_size_and_type(tenant, item):
    response = attach(tenant, item["id"], size=1234)
    assert response.status_code == 201
    attachment = body_of(response)
    assert response.headers["Location"] == f"/items/{item['id']}/attachments/{attachment['id']}"
    assert attachment["status"] == "pending"
    assert {k: attachment[k] for k in ("item_id", "filename", "content_type", "size")} == {
        "item_id": item["id"],
        "filename": "scan.png",
        "content_type": PNG,
        "size": 1234,
    }
    upload = attachment["upload"]
    assert upload["method"] == "POST"
    fields = upload["fields"]
    assert fields["key"] == f"attachments/{tenant.name}/{item['id']}/{attachment['id']}"
    assert fields["Content-Type"] == PNG
    policy = json.loads(base64.b64decode(fields["policy"]))
    assert ["content-length-range", 1234, 1234] in policy["conditions"]
    assert {"Content-Type": PNG} in policy["conditions"]
    assert policy["expiration"] <= upload["expires_at"].replace(".000Z", "Z").rsplit(".", 1)[0] + "Z"


@pytest.mark.parametrize(
    ("overrides", "pointer"),
    [
        ({"filename": ""}, "/filename"),
        ({"filename": "a/b.png"}, "/filename"),
        ({"filename": "a\\b.png"}, "/filename"),
        ({"filename": "tab\there.png"}, "/filename"),
        ({"filename": "x" * 256}, "/filename"),
        ({"content_type": "image/svg+xml"}, "/content_type"),
        ({"size": 0}, "/size"),
        ({"size": "4"}, "/size"),
        ({"size": 4.5}, "/size"),
        ({"size": 10 * 1024 * 1024 + 1}, "/size"),
        ({"colour": "red"}, "/colour"),
    ],
)
def test_invalid_declarations_are_422(tenant, item, overrides, pointer):
    response = attach(tenant, item["id"], **overrides)
    assert response.status_code == 422
    problem = body_of(response)
    assert problem["type"] == "/problems/validation-error"
    assert [e["pointer"] for e in problem["errors"]] == [pointer]


def test_size_limit_is_a_stage_setting(tenant, item, monkeypatch):
    monkeypatch.setenv("MAX_ATTACHMENT_BYTES", "100")
    assert attach(tenant, item["id"], size=100).status_code == 201
    response = attach(tenant, item["id"], size=101)
    assert response.status_code == 422
    assert body_of(response)["errors"] == [{"pointer": "/size", "detail": "must be at most 100 bytes"}]


def test_unknown_or_foreign_item_is_404(tenant, other_tenant, item):
    assert attach(tenant, "nope").status_code == 404
    assert attach(tenant, "bad id!").status_code == 404
    assert attach(other_tenant, item["id"]).status_code == 404
    created = body_of(attach(tenant, item["id"]))
    for path in (f"/items/{item['id']}/attachments", f"/items/{item['id']}/attachments/{created['id']}"):
        assert other_tenant.request("GET", path).status_code == 404
    assert other_tenant.request("DELETE", f"/items/{item['id']}/attachments/{created['id']}").status_code == 404
    assert tenant.request("GET", f"/items/{item['id']}/attachments/nope").status_code == 404
    assert tenant.request("GET", f"/items/{item['id']}/attachments/bad!id").status_code == 404


def test_upload_checked_then_ready_with_download_under_original_name(client, tenant, item, s3):
    attachment = body_of(attach(tenant, item["id"], filename='Réçu 2024 "final".png'))
    key = store(s3, attachment, b"\x89PNG", PNG)
    deliver(client, key)
    ready = body_of(tenant.request("GET", f"/items/{item['id']}/attachments/{attachment['id']}"))
    assert ready["status"] == "ready"
    assert "upload" not in ready
    query = urllib.parse.parse_qs(urllib.parse.urlparse(ready["download_url"]).query)
    assert query["response-content-disposition"] == [
        "attachment; filename=\"R__u 2024 _final_.png\"; filename*=UTF-8''R%C3%A9%C3%A7u%202024%20%22final%22.png"
    ]
    assert query["response-content-type"] == [PNG]
    assert int(query["X-Amz-Expires"][0]) <= 300
    listed = body_of(tenant.request("GET", f"/items/{item['id']}/attachments"))["attachments"]
    assert [a["id"] for a in listed] == [attachment["id"]]
    # A duplicate event changes nothing.
    deliver(client, key)
    again = body_of(tenant.request("GET", f"/items/{item['id']}/attachments/{attachment['id']}"))
    assert again["updated_at"] == ready["updated_at"]


@pytest.mark.parametrize(
    ("content", "content_type", "reason"),
    [
        (b"\x89PNG-and-more", PNG, "the uploaded file has 13 bytes, 4 were declared"),
        (b"abc", PNG, "the uploaded file has 3 bytes, 4 were declared"),
        (b"\x89PNG", "text/html", "the uploaded file is text/html, image/png was declared"),
    ],
)
def test_mismatching_upload_is_rejected_and_removed(client, tenant, item, s3, content, content_type, reason):
    attachment = body_of(attach(tenant, item["id"]))
    key = store(s3, attachment, content, content_type)
    deliver(client, key)
    rejected = body_of(tenant.request("GET", f"/items/{item['id']}/attachments/{attachment['id']}"))
    assert rejected["status"] == "rejected"
    assert rejected["rejection_reason"] == reason
    assert "download_url" not in rejected
    assert not exists(s3, key)
    # Uploading again to a rejected attachment stores nothing.
    store(s3, attachment, content, content_type)
    deliver(client, key)
    assert not exists(s3, key)


def test_content_type_parameters_are_ignored(client, tenant, item, s3):
    attachment = body_of(attach(tenant, item["id"], content_type="text/plain", size=2))
    deliver(client, store(s3, attachment, b"hi", "Text/Plain; charset=utf-8"))
    assert body_of(tenant.request("GET", f"/items/{item['id']}/attachments/{attachment['id']}"))["status"] == "ready"


def test_odd_and_unknown_keys_are_skipped_without_failing_the_others(client, tenant, item, s3):
    attachment = body_of(attach(tenant, item["id"]))
    key = store(s3, attachment, b"\x89PNG", PNG)
    bucket = os.environ["BUCKET_NAME"]
    odd_keys = [
        f"attachments/{tenant.name}/{item['id']} x/{attachment['id']}",  # space: '+' on the wire
        f"attachments/{tenant.name}/{item['id']}+x/{attachment['id']}",  # a real '+': '%2B'
        f"attachments/{tenant.name}/é/{attachment['id']}",  # unicode
        f"attachments/{tenant.name}/{item['id']}/x/{attachment['id']}",  # '/' encoded as %2F
        f"attachments/{tenant.name}/{item['id']}",
        "attachments/",
        "elsewhere/file.txt",
    ]
    for odd in odd_keys:
        s3.put_object(Bucket=bucket, Key=odd, Body=b"x")
    event = s3_event(*odd_keys, key)
    # Chalice reads the first record itself, so the broken ones come later.
    event["Records"].insert(1, {"eventSource": "aws:s3"})  # not an object record at all
    event["Records"].insert(2, {"s3": {"bucket": {"name": bucket}, "object": {"key": 7}}})
    event["Records"].append(s3_event(key, bucket="someone-elses-bucket")["Records"][0])
    assert [r["s3"]["object"]["key"] for r in event["Records"] if "s3" in r][:2] == [
        urllib.parse.quote_plus(odd_keys[0]),
        7,
    ]
    assert "+x" not in event["Records"][3]["s3"]["object"]["key"]
    assert "%2F" in event["Records"][5]["s3"]["object"]["key"]
    deliver_event = client.lambda_.invoke("on_attachment_uploaded", event)
    assert deliver_event.payload is None
    assert body_of(tenant.request("GET", f"/items/{item['id']}/attachments/{attachment['id']}"))["status"] == "ready"
    for odd in odd_keys:
        assert exists(s3, odd), odd  # not ours to delete


def test_late_upload_for_a_deleted_attachment_is_removed(client, tenant, item, s3):
    attachment = body_of(attach(tenant, item["id"]))
    assert tenant.request("DELETE", f"/items/{item['id']}/attachments/{attachment['id']}").status_code == 204
    key = store(s3, attachment, b"\x89PNG", PNG)
    deliver(client, key)
    assert not exists(s3, key)


def test_delete_removes_the_file_and_frees_a_slot(client, tenant, item, s3):
    attachments = [body_of(attach(tenant, item["id"])) for _ in range(20)]
    response = attach(tenant, item["id"])
    assert response.status_code == 409
    assert body_of(response)["type"] == "/problems/conflict"
    first = attachments[0]
    key = store(s3, first, b"\x89PNG", PNG)
    deliver(client, key)
    assert tenant.request("DELETE", f"/items/{item['id']}/attachments/{first['id']}").status_code == 204
    assert not exists(s3, key)
    assert tenant.request("GET", f"/items/{item['id']}/attachments/{first['id']}").status_code == 404
    assert tenant.request("DELETE", f"/items/{item['id']}/attachments/{first['id']}").status_code == 404
    assert attach(tenant, item["id"]).status_code == 201
    assert len(body_of(tenant.request("GET", f"/items/{item['id']}/attachments"))["attachments"]) == 20


def test_deleting_the_item_hides_its_attachments_and_a_new_item_does_not_inherit_them(client, tenant, item, s3):
    attachment = body_of(attach(tenant, item["id"]))
    key = store(s3, attachment, b"\x89PNG", PNG)
    deliver(client, key)
    assert tenant.request("DELETE", f"/items/{item['id']}", headers={"If-Match": '"1"'}).status_code == 204
    assert tenant.request("GET", f"/items/{item['id']}/attachments").status_code == 404
    assert tenant.request("GET", f"/items/{item['id']}/attachments/{attachment['id']}").status_code == 404
    again = tenant.request("POST", "/items", {"id": item["id"], "name": "same id, new item"})
    assert again.status_code == 201
    assert body_of(tenant.request("GET", f"/items/{item['id']}/attachments")) == {"attachments": []}
    assert tenant.request("GET", f"/items/{item['id']}/attachments/{attachment['id']}").status_code == 404
    assert exists(s3, key)  # until the next cleanup run (see test_cleanup)


def test_delete_of_an_item_with_attachments_honours_if_match(tenant, item):
    attach(tenant, item["id"])
    response = tenant.request("DELETE", f"/items/{item['id']}", headers={"If-Match": '"7"'})
    assert response.status_code == 412
    assert tenant.request("GET", f"/items/{item['id']}").status_code == 200
    assert tenant.request("DELETE", "/items/nothing-here").status_code == 404


def test_attachments_do_not_change_the_item(tenant, item):
    attach(tenant, item["id"])
    current = body_of(tenant.request("GET", f"/items/{item['id']}"))
    assert current == item
    replaced = body_of(tenant.request("PUT", f"/items/{item['id']}", {"name": "renamed"}))
    assert set(replaced) == set(item)
    assert len(body_of(tenant.request("GET", f"/items/{item['id']}/attachments"))["attachments"]) == 1


def test_idempotency_key_replays_the_creation(tenant, item):
    headers = {"Idempotency-Key": "attach-once"}
    first = tenant.request(
        "POST",
        f"/items/{item['id']}/attachments",
        {"filename": "a.png", "content_type": PNG, "size": 4},
        headers=headers,
    )
    second = tenant.request(
        "POST",
        f"/items/{item['id']}/attachments",
        {"filename": "a.png", "content_type": PNG, "size": 4},
        headers=headers,
    )
    assert first.status_code == second.status_code == 201
    assert second.headers["Idempotent-Replayed"] == "true"
    assert body_of(first) == body_of(second)
    assert len(body_of(tenant.request("GET", f"/items/{item['id']}/attachments"))["attachments"]) == 1
    other = tenant.request(
        "POST",
        f"/items/{item['id']}/attachments",
        {"filename": "b.png", "content_type": PNG, "size": 4},
        headers=headers,
    )
    assert other.status_code == 422
    assert body_of(other)["type"] == "/problems/idempotency-key-reused"


def test_wrong_media_type_and_malformed_bodies(tenant, item):
    path = f"/items/{item['id']}/attachments"
    assert tenant.request("POST", path, raw="{", content_type="application/json").status_code == 400
    assert tenant.request("POST", path, raw="x", content_type="text/plain").status_code == 415
    assert tenant.request("POST", path, raw="[]", content_type="application/json").status_code == 422


def test_a_slow_storage_client_does_not_stretch_the_form_past_its_expiry(monkeypatch):
    """The form's lifetime is counted after the S3 client is ready (its first creation can be slow)."""
    import base64
    import json
    import time as _time
    from datetime import timedelta

    from chalicelib.files import uploads
    from chalicelib.store import aws
    from chalicelib.util import clock

    real = aws.s3

    def slow_client():
        _time.sleep(1.5)
        return real()

    monkeypatch.setattr(aws, "s3", slow_client)
    expires_at = clock.now() + timedelta(seconds=60)
    form = uploads.upload_form(os.environ["BUCKET_NAME"], "attachments/t/i/a", "image/png", 10, expires_at)
    policy = json.loads(base64.b64decode(form["fields"]["policy"]))
    assert policy["expiration"] <= clock.format_timestamp(expires_at).rsplit(".", 1)[0] + "Z"
