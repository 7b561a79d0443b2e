"""The message both sides exchange in the interop tests (the Rust tests define the same)."""

from datetime import datetime
from typing import ClassVar, Literal
from uuid import UUID

from jararaca import Message


class OrderPlaced(Message):
    MESSAGE_TOPIC: ClassVar[str] = "interop.order.placed"
    MESSAGE_TYPE: ClassVar[Literal["task", "event"]] = "task"

    order_id: UUID
    customer_name: str
    amount_cents: int
    tags: list[str]
    note: str | None
    placed_at: datetime
