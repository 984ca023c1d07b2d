import json


def test_health(client):
    r = client.http.get("/health")
    assert r.status_code == 200
    assert json.loads(r.body) == {"status": "ok", "version": "1.0.0"}


def test_create_get(tenant):
    r = tenant.request("POST", "/items", {"name": "Receipt", "data": {"a": 0.1, "b": 2, "c": 12345678901234567890}})
    print(r.status_code, r.headers, r.body)
    assert r.status_code == 201
    item = json.loads(r.body)
    r = tenant.request("GET", f"/items/{item['id']}")
    print(r.body)
    assert r.status_code == 200
