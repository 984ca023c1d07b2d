"""Rows go to the queue in bounded messages and bounded SendMessageBatch calls, none lost."""

from __future__ import annotations

import json

import pytest

from chalicelib.imports import pipeline as import_pipeline
from chalicelib.imports.pipeline import ChunkSender, IdRegistry, QueueRefusedError
from chalicelib.store import aws


class FakeQueue:
    def __init__(self, refuse_first: int = 0, refuse_always: bool = False) -> None:
        self.calls: list[list[dict]] = []
        self.refuse_first = refuse_first
        self.refuse_always = refuse_always

    def send_message_batch(self, QueueUrl, Entries):  # noqa: N803 - boto3's parameter names
        self.calls.append(Entries)
        if self.refuse_always or len(self.calls) <= self.refuse_first:
            return {"Successful": [], "Failed": [{"Id": Entries[-1]["Id"], "Code": "InternalError"}]}
        return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}


@pytest.fixture
def queue(monkeypatch):
    fake = FakeQueue()
    monkeypatch.setattr(aws, "sqs", lambda: fake)
    monkeypatch.setattr(import_pipeline.time, "sleep", lambda _s: None)
    return fake


def sent_bodies(queue: FakeQueue) -> list[dict]:
    seen: dict[int, dict] = {}
    for call in queue.calls:
        for entry in call:
            body = json.loads(entry["MessageBody"])
            seen[body["chunk"]] = body
    return [seen[n] for n in sorted(seen)]


def test_messages_and_batches_stay_within_their_bounds(queue):
    sender = ChunkSender("url", "tenant", "imp")
    for line in range(1, 1201):
        sender.add(line, {"id": f"r{line}", "name": "x" * 100})
    assert sender.close() == 24
    assert all(len(call) <= 10 for call in queue.calls)
    assert all(sum(len(e["MessageBody"].encode()) for e in call) <= 240 * 1024 for call in queue.calls)
    bodies = sent_bodies(queue)
    assert [len(b["rows"]) for b in bodies] == [50] * 24
    assert [r["line"] for b in bodies for r in b["rows"]] == list(range(1, 1201))
    assert {(b["kind"], b["tenant"], b["import_id"]) for b in bodies} == {("import_rows", "tenant", "imp")}


def test_large_rows_make_smaller_messages(queue):
    sender = ChunkSender("url", "t", "i")
    for line in range(1, 41):
        sender.add(line, {"id": f"r{line}", "name": "n", "data": {"blob": "é" * 10_000}})
    sender.close()
    bodies = [e["MessageBody"].encode() for call in queue.calls for e in call]
    assert all(len(body) <= 64 * 1024 + 200 for body in bodies)
    assert all(sum(len(e["MessageBody"].encode()) for e in call) <= 240 * 1024 for call in queue.calls)
    assert sum(len(json.loads(b)["rows"]) for b in bodies) == 40


def test_refused_entries_are_sent_again(queue):
    queue.refuse_first = 2
    sender = ChunkSender("url", "t", "i")
    for line in range(1, 101):
        sender.add(line, {"id": str(line), "name": "n"})
    assert sender.close() == 2
    assert len(queue.calls) == 3
    assert [b["chunk"] for b in sent_bodies(queue)] == [0, 1]


def test_persistent_refusal_raises(queue):
    queue.refuse_always = True
    sender = ChunkSender("url", "t", "i")
    sender.add(1, {"id": "1", "name": "n"})
    with pytest.raises(QueueRefusedError):
        sender.close()


def test_id_registry_remembers_the_first_line():
    with IdRegistry("unused-bucket", "unused-key", restore=False) as registry:
        assert registry.claim("a", 2) is None
        assert registry.claim("b", 3) is None
        assert registry.claim("a", 9) == 2
        assert registry.claim("a", 12) == 2
