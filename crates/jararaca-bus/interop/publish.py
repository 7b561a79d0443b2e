"""Publishes one OrderPlaced with Python jararaca 0.5.13, as a service does.

usage: python publish.py BROKER_URL EXCHANGE PAYLOAD_JSON HEADERS_JSON

The message goes through `MessageBusPublisherInterceptor` in collector mode
(`open_connection_at_end_of_transaction=True`, the mode that works in 0.5.13) over an
`AIOPikaConnectionFactory`: `Message.publish()` stages it inside the unit of work and the
interceptor sends it when the unit ends. HEADERS_JSON are the implicit headers of the unit
(what a worker provides from the message it handles), which travel with the message.
"""

import asyncio
import json
import sys
from datetime import datetime, timezone

from jararaca import (
    AIOPikaConnectionFactory,
    AppTransactionContext,
    MessageBusPublisherInterceptor,
    provide_implicit_headers,
)
from jararaca.microservice import SchedulerTransactionData

from interop_messages import OrderPlaced


async def main(broker_url: str, exchange: str, payload: str, headers: str) -> None:
    interceptor = MessageBusPublisherInterceptor(
        AIOPikaConnectionFactory(url=broker_url, exchange=exchange),
        open_connection_at_end_of_transaction=True,
    )
    now = datetime.now(tz=timezone.utc)
    unit = AppTransactionContext(
        transaction_data=SchedulerTransactionData(
            task_name="interop.publish",
            triggered_at=now,
            scheduled_to=now,
            cron_expression="* * * * *",
        ),
        controller_member_reflect=None,  # type: ignore[arg-type]  # unused by this interceptor
    )
    with provide_implicit_headers(json.loads(headers)):
        async with interceptor.intercept(unit):
            await OrderPlaced.model_validate_json(payload).publish()


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    asyncio.run(main(*sys.argv[1:]))
