#!/usr/bin/env python3
"""The PyPI a2a-sdk client against a QuNimbus node, used as a new user would.

    python3 a2a_client.py BASE_URL ADMIN_TOKEN READ_TOKEN

Prints one JSON object with what it saw; the Rust test (tests/a2a.rs)
checks it against the node's own HTTP API. Any protocol surprise raises.
"""

import asyncio
import json
import sys
import uuid

import httpx
from a2a.client import (
    A2ACardResolver,
    A2AClientError,
    AuthInterceptor,
    ClientCallContext,
    ClientConfig,
    ClientFactory,
    CredentialService,
)
from a2a.helpers import get_data_parts, new_data_part
from a2a.types import (
    CancelTaskRequest,
    GetTaskRequest,
    ListTasksRequest,
    Message,
    Role,
    SendMessageRequest,
    TaskNotCancelableError,
    TaskNotFoundError,
    TaskState,
)
from google.protobuf.json_format import MessageToDict


class Token(CredentialService):
    def __init__(self, token):
        self.token = token

    async def get_credentials(self, scheme, context):
        return self.token


def message(skill, params):
    return Message(
        message_id=str(uuid.uuid4()),
        role=Role.ROLE_USER,
        parts=[new_data_part({"skill": skill, "params": params})],
    )


def state(task):
    return TaskState.Name(task.status.state)


def status_text(task):
    parts = task.status.message.parts
    return parts[0].text if parts else ""


async def unary_send(client, skill, params):
    async for response in client.send_message(SendMessageRequest(message=message(skill, params))):
        return response.task
    raise AssertionError("no answer")


async def main(base, admin_token, read_token):
    out = {}
    async with httpx.AsyncClient() as http:
        card = await A2ACardResolver(http, base).get_agent_card()
    out["card"] = MessageToDict(card)

    def factory(token, **config):
        return ClientFactory(ClientConfig(**config)).create(card, interceptors=[AuthInterceptor(Token(token))])

    admin = factory(admin_token, streaming=False)
    polling = factory(admin_token, streaming=False, polling=True)
    streaming = factory(admin_token, streaming=True)
    reader = factory(read_token, streaming=False)
    async with admin, polling, streaming, reader:
        quote = await unary_send(
            admin,
            "valuation.quote",
            {"region": "Americas", "eta_ent": 0.97, "coherence_variance": 0.015,
             "runtime_hours": 100, "eph_delivered": 1000},
        )
        out["quote"] = {"id": quote.id, "state": state(quote),
                        "data": get_data_parts(quote.artifacts[0].parts)[0]}

        done = await unary_send(admin, "agent.backtest", {"bars": 3000, "seed": 11})
        out["backtest"] = {"id": done.id, "state": state(done),
                           "report": get_data_parts(done.artifacts[0].parts)[0]}

        long = await unary_send(polling, "agent.backtest", {"bars": 1000000, "seed": 3})
        out["long_started"] = state(long)
        canceled = await polling.cancel_task(CancelTaskRequest(id=long.id))
        again = await admin.get_task(GetTaskRequest(id=long.id))
        out["canceled"] = {"id": long.id, "state": state(canceled), "stored": state(again),
                           "why": status_text(again)}

        kinds, states = [], []
        async for event in streaming.send_message(
            SendMessageRequest(message=message("agent.backtest", {"bars": 2000, "seed": 5})),
            context=ClientCallContext(timeout=120),
        ):
            kind = event.WhichOneof("payload")
            kinds.append(kind)
            if kind == "task":
                states.append(state(event.task))
            elif kind == "status_update":
                states.append(TaskState.Name(event.status_update.status.state))
        out["stream"] = {"kinds": kinds, "states": states}

        bad = await unary_send(admin, "valuation.quote", {"region": "Americas", "eta_ent": 2})
        out["bad_quote"] = {"state": state(bad), "why": status_text(bad)}
        unknown = await unary_send(admin, "ledger.burn", {})
        out["unknown_skill"] = {"state": state(unknown), "why": status_text(unknown)}

        refused = await unary_send(reader, "agent.pause", {"reason": "not mine to pause"})
        out["pause_as_reader"] = {"state": state(refused), "why": status_text(refused)}
        paused = await unary_send(admin, "agent.pause", {"reason": "a2a drill"})
        out["pause_as_admin"] = {"state": state(paused),
                                 "data": get_data_parts(paused.artifacts[0].parts)[0]}
        resumed = await unary_send(admin, "agent.resume", {"reason": "a2a drill over"})
        out["resume_as_admin"] = state(resumed)

        status = await unary_send(reader, "ledger.status", {})
        out["ledger_status"] = get_data_parts(status.artifacts[0].parts)[0]
        proof = await unary_send(reader, "ledger.prove", {"index": 0})
        out["proof"] = get_data_parts(proof.artifacts[0].parts)[0]

        listed = await admin.list_tasks(ListTasksRequest(page_size=3))
        second = await admin.list_tasks(ListTasksRequest(page_size=3, page_token=listed.next_page_token))
        out["list"] = {"first": [t.id for t in listed.tasks], "second": [t.id for t in second.tasks],
                       "total": listed.total_size}
        mine = await reader.list_tasks(ListTasksRequest(page_size=100))
        out["reader_sees"] = [t.id for t in mine.tasks]

        try:
            await admin.get_task(GetTaskRequest(id="task-missing"))
            out["missing"] = "found"
        except TaskNotFoundError as e:
            out["missing"] = "TaskNotFoundError"
        try:
            await admin.cancel_task(CancelTaskRequest(id=quote.id))
            out["cancel_done"] = "canceled"
        except TaskNotCancelableError:
            out["cancel_done"] = "TaskNotCancelableError"

    anonymous = ClientFactory(ClientConfig(streaming=False)).create(card)
    async with anonymous:
        try:
            await anonymous.get_task(GetTaskRequest(id=quote.id))
            out["anonymous"] = "answered"
        except A2AClientError as e:
            out["anonymous"] = str(e).splitlines()[0]
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
