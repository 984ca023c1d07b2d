"""Stored files: every key and every presigned URL stays inside its tenant's prefix.

Object keys are built from the tenant and server ids only, whatever the filename; the upload
form's policy pins the exact key, size and type; a download link is short-lived and names the
file only in its Content-Disposition; the storage-event handler ignores keys that are not ours.
"""

from __future__ import annotations

import base64
import json
import os
import re
import urllib.parse

import boto3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.files import uploads
from tests.unit.conftest import make_tenant
from tests.unit.eventkit import s3_event
from tests.unit.hardening.test_faults import records
from tests.unit.helpers import body

ULID = r"[0-9A-HJKMNP-TV-Z]{26}"
# Filenames the validator accepts and that would be dangerous in a path or a header.
tricky_names = st.one_of(
    st.sampled_from(["..", ". .", "%2e%2e", "%2F..%2Fother", "a\"b.png", "résumé.pdf", "x;filename=evil.exe",
                     "${filename}", "~", " leading", "日本語.txt", "a" * 255]),
    st.text(min_size=1, max_size=40).filter(lambda s: "/" not in s and "\\" not in s and s.isprintable()),
)


def _policy(upload: dict) -> dict:
    return json.loads(base64.b64decode(upload["fields"]["policy"]))


@settings(max_examples=40, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
@given(filename=tricky_names)
def test_attachment_keys_are_the_tenants_whatever_the_filename(client, filename):
    tenant = make_tenant(client)
    assert tenant.request("POST", "/items", {"id": "it", "name": "files"}).status_code == 201
    created = tenant.request("POST", "/items/it/attachments",
                             {"filename": filename, "content_type": "image/png", "size": 5})
    if created.status_code == 422:
        return  # refused by the filename rules: nothing to store
    assert created.status_code == 201, created.body
    attachment = body(created)
    key = attachment["upload"]["fields"]["key"]
    assert re.fullmatch(rf"attachments/{tenant.name}/it/{ULID}", key), key
    assert key == uploads.attachment_key(tenant.name, "it", attachment["id"])
    conditions = _policy(attachment["upload"])["conditions"]
    assert {"key": key} in conditions  # exactly this key, not a prefix
    assert {"bucket": os.environ["BUCKET_NAME"]} in conditions
    assert ["content-length-range", 5, 5] in conditions
    assert not any(isinstance(c, list) and c[0] == "starts-with" for c in conditions)


def test_download_links_are_short_lived_and_name_the_file_only_in_its_header(client):
    tenant = make_tenant(client)
    tenant.request("POST", "/items", {"id": "it", "name": "files"})
    name = 'évil"; filename=x.exe'
    attachment = body(tenant.request("POST", "/items/it/attachments",
                                     {"filename": name, "content_type": "text/plain", "size": 3}))
    key = attachment["upload"]["fields"]["key"]
    boto3.client("s3").put_object(Bucket=os.environ["BUCKET_NAME"], Key=key, Body=b"abc", ContentType="text/plain")
    client.lambda_.invoke("on_attachment_uploaded", s3_event(key))
    ready = body(tenant.request("GET", f"/items/it/attachments/{attachment['id']}"))
    assert ready["status"] == "ready"
    url = urllib.parse.urlsplit(ready["download_url"])
    assert urllib.parse.unquote(url.path).endswith(key)
    query = urllib.parse.parse_qs(url.query)
    assert int(query["X-Amz-Expires"][0]) <= 300
    disposition = query["response-content-disposition"][0]
    assert disposition.startswith('attachment; filename="')
    assert '"; filename=x.exe' not in disposition.split("filename*=")[0]  # the quote cannot end the value


def test_import_keys_are_the_tenants(client):
    tenant = make_tenant(client)
    created = body(tenant.request("POST", "/imports", {"format": "csv", "size": 10}))
    key = created["upload"]["fields"]["key"]
    assert re.fullmatch(rf"imports/{tenant.name}/{ULID}", key)
    assert {"key": key} in _policy(created["upload"])["conditions"]


def test_another_tenant_cannot_reach_an_attachment(client):
    owner, other = make_tenant(client), make_tenant(client)
    owner.request("POST", "/items", {"id": "it", "name": "files"})
    attachment = body(owner.request("POST", "/items/it/attachments",
                                    {"filename": "a.png", "content_type": "image/png", "size": 1}))
    path = f"/items/it/attachments/{attachment['id']}"
    other.request("POST", "/items", {"id": "it", "name": "same id, other tenant"})
    assert other.request("GET", path).status_code == 404
    assert other.request("DELETE", path).status_code == 404
    assert [a["id"] for a in body(other.request("GET", "/items/it/attachments"))["attachments"]] == []
    assert owner.request("GET", path).status_code == 200


def test_storage_events_for_keys_that_are_not_ours_change_nothing(client):
    """A file under another prefix, a traversal, a key naming a record that does not exist: the
    handler records nothing, raises nothing (the event is not retried forever), and a stray object
    under the attachments prefix is removed."""
    tenant = make_tenant(client)
    tenant.request("POST", "/items", {"id": "it", "name": "files"})
    before = records(tenant)
    s3 = boto3.client("s3")
    bucket = os.environ["BUCKET_NAME"]
    stray = f"attachments/{tenant.name}/it/01ARZ3NDEKTSV4RRFFQ69G5FAV"
    s3.put_object(Bucket=bucket, Key=stray, Body=b"x")
    keys = [
        stray,
        f"attachments/{tenant.name}/../other/it/x",
        f"attachments/{tenant.name}/it",
        "elsewhere/file.png",
        f"imports/{tenant.name}/nope",
    ]
    client.lambda_.invoke("on_attachment_uploaded", s3_event(*keys))
    assert records(tenant) == before
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix=stray)
