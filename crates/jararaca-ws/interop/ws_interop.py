"""The Python side of the WebSocket interop tests, on the real jararaca 0.5.13 code paths:
its RedisWebSocketConnectionBackend and WebSocketConnectionManagerImpl.

usage:
  ws_interop.py send REDIS_URL CHANNEL_PREFIX ROOM
      publishes OrderUpdated to ROOM through the backend, then prints the wrapper JSON it sent
  ws_interop.py serve REDIS_URL CHANNEL_PREFIX ROOM PORT
      serves ws://127.0.0.1:PORT/ws: each client joins ROOM through the manager, which
      delivers what the backend's subscription receives; prints "ready" once subscribed
"""

import asyncio
import sys
from typing import Optional

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from redis.asyncio import Redis

from jararaca import RedisWebSocketConnectionBackend, WebSocketMessage
from jararaca.presentation.websocket.websocket_interceptor import (
    WebSocketConnectionManagerImpl,
    WebSocketMessageWrapper,
)


class OrderUpdated(WebSocketMessage):
    MESSAGE_ID = "order.updated"

    order_id: str
    new_status: str
    amount_cents: int
    tags: list[str]
    note: Optional[str]


def order() -> OrderUpdated:
    return OrderUpdated(
        order_id="6f1c2b7e-3d4a-4e5f-8a9b-0c1d2e3f4a5b",
        new_status="créé \"now\"",
        amount_cents=1299,
        tags=["gift", "ünïcode"],
        note=None,
    )


def manager(url: str, prefix: str) -> WebSocketConnectionManagerImpl:
    # Built inside the running loop, as the reference requires (its known bug 9).
    backend = RedisWebSocketConnectionBackend(
        Redis.from_url(url),
        broadcast_pubsub_channel=f"{prefix}:broadcast",
        send_pubsub_channel=f"{prefix}:send",
    )
    return WebSocketConnectionManagerImpl(backend, asyncio.Event())


async def send(url: str, prefix: str, room: str) -> None:
    message = order()
    await manager(url, prefix).send([room], message)
    wrapper = WebSocketMessageWrapper(MESSAGE_ID=message.MESSAGE_ID, message=message)
    sys.stdout.buffer.write(wrapper.model_dump_json().encode())
    sys.stdout.flush()


async def serve(url: str, prefix: str, room: str, port: int) -> None:
    import uvicorn

    app = FastAPI()
    state: dict = {}

    @app.websocket("/ws")
    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        connections = state["manager"]
        await connections.add_websocket(websocket)
        await connections.join([room], websocket)
        try:
            while True:
                await websocket.receive_text()
        except WebSocketDisconnect:
            await connections.remove_websocket(websocket)

    state["manager"] = manager(url, prefix)
    # Let the backend's consumers subscribe before anyone sends.
    await asyncio.sleep(1.0)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    print("ready", flush=True)
    await server.serve()


if __name__ == "__main__":
    mode, url, prefix, room = sys.argv[1:5]
    if mode == "send":
        asyncio.run(send(url, prefix, room))
    else:
        asyncio.run(serve(url, prefix, room, int(sys.argv[5])))
