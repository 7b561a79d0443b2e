"""A Python jararaca 0.5.13 worker for the interop tests.

Run as `jararaca worker <module>:app …` with this folder on PYTHONPATH. The tests copy it
under a unique module name, which makes its queue name unique too (the reference names a
handler's queue `<topic>.<module>.<qualname>`). It handles OrderPlaced and appends what it
received (the decoded payload, the headers, the message id and the attempt) as one JSON
line to the file INTEROP_OUT.
"""

import json
import os

from jararaca import (
    MessageBusController,
    MessageHandler,
    Microservice,
    use_app_tx_ctx_data,
    use_implicit_headers,
)

from interop_messages import OrderPlaced

@MessageBusController()
class InteropController:
    @MessageHandler(OrderPlaced)
    async def on_order_placed(self, message: OrderPlaced) -> None:
        unit = use_app_tx_ctx_data()
        record = {
            "payload": message.model_dump(mode="json"),
            "headers": dict(use_implicit_headers()),
            "message_id": getattr(unit, "message_id", None),
            "processing_attempt": getattr(unit, "processing_attempt", None),
        }
        with open(os.environ["INTEROP_OUT"], "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")


app = Microservice(controllers=[InteropController])
