"""An attachment as stored: frozen records the repository returns and the service takes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AttachmentRecord:
    """One attachment of one incarnation of an item (the item's ``created_at``: ``item_created_at``)."""

    id: str
    item_id: str
    item_created_at: str
    filename: str
    content_type: str
    size: int
    status: str
    created_at: str
    updated_at: str
    rejection_reason: str | None = None
    # When the cleanup job is to look at it (while pending; absent otherwise).
    due_at: str | None = None

    def belongs_to(self, item_created_at: object) -> bool:
        """Whether it is an attachment of the item incarnation created at ``item_created_at``."""
        return self.item_created_at == item_created_at
