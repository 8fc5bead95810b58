"""The official A2A Python SDK (a2a-sdk 1.3.0) client, talking to Fulcrum's A2A server over the
JSON-RPC binding of protocol version 1.0, as any A2A agent or orchestrator would.

    a2a_client.py BASE_URL TOKEN TEXT EXPECTED

BASE_URL is where the Agent Card is served (`<BASE_URL>/.well-known/agent-card.json`); the
JSON-RPC endpoint is whatever the card's JSONRPC interface names. TOKEN is a Fulcrum API token,
sent as `Authorization: Bearer TOKEN`. TEXT is the user message (e.g. "list my projects") and
EXPECTED a substring the agent's answer must contain.

Checks: (a) the card resolves, is named "Fulcrum project manager", declares streaming, a JSONRPC
1.0 interface and an HTTP bearer security scheme; (b) a non-streaming SendMessage returns a
completed task whose answer (artifacts or status message) contains EXPECTED; (c) the same message
streamed (SendStreamingMessage, authenticated through the SDK's AuthInterceptor from the card's
security scheme) yields at least two events, the last a completed one, with EXPECTED in the
streamed text; (d) GetTask on the task from (b) says completed, and an unknown task id raises the
SDK's TaskNotFoundError; (e) a wrong token gets an error naming HTTP 401. Prints one line per
check and `a2a sdk: N passed`; exits 1 on a failure.

Run with /root/.cache/fulcrum/llm-venv/bin/python.
"""

import asyncio
import sys
import uuid

import httpx

from a2a.client import (
    A2ACardResolver,
    A2AClientError,
    AgentCardResolutionError,
    AuthInterceptor,
    ClientCallContext,
    ClientConfig,
    ClientFactory,
    InMemoryContextCredentialStore,
)
from a2a.helpers import get_artifact_text, get_message_text, new_text_message
from a2a.types.a2a_pb2 import (
    GetTaskRequest,
    Role,
    SendMessageRequest,
    TaskState,
)
from a2a.utils.errors import TaskNotFoundError

base, token, text, expected = sys.argv[1:5]
passed = 0
TIMEOUT = httpx.Timeout(120.0)  # httpx's default of 5 s is too short for an LLM-backed answer
COMPLETED = TaskState.TASK_STATE_COMPLETED


def check(name, ok, detail=""):
    global passed
    if not ok:
        print(f"FAIL {name}: {detail}")
        sys.exit(1)
    passed += 1
    print(f"ok {name}")


def state_name(state):
    return TaskState.Name(state)


def task_text(task):
    """The agent's answer in a Task: its artifacts' text and its status message's text.

    An artifact streamed in chunks (`append`) holds one text part per chunk, so its parts are
    joined with nothing between them."""
    texts = [get_artifact_text(a, delimiter="") for a in task.artifacts]
    if task.status.HasField("message"):
        texts.append(get_message_text(task.status.message))
    return "\n".join(t for t in texts if t)


def request(msg_text):
    return SendMessageRequest(message=new_text_message(msg_text, role=Role.ROLE_USER))


def bearer_client(tok):
    return httpx.AsyncClient(headers={"Authorization": f"Bearer {tok}"}, timeout=TIMEOUT)


async def main():
    # (a) the Agent Card, fetched with the token the way ClientFactory.create_from_url does it
    async with bearer_client(token) as http:
        try:
            card = await A2ACardResolver(http, base).get_agent_card()
        except AgentCardResolutionError as e:
            check("agent card", False, repr(e))
        check("agent card name", card.name == "Fulcrum project manager", card.name)
        check("agent card streaming", card.capabilities.streaming, card.capabilities)
        check(
            "agent card jsonrpc interface",
            any(
                i.protocol_binding == "JSONRPC"
                and i.protocol_version.split(".")[:2] == ["1", "0"]
                and i.url.startswith(("http://", "https://"))
                for i in card.supported_interfaces
            ),
            list(card.supported_interfaces),
        )
        bearer = [
            name
            for req in card.security_requirements
            for name in req.schemes
            if name in card.security_schemes
            and card.security_schemes[name].http_auth_security_scheme.scheme.lower() == "bearer"
        ]
        check("agent card bearer scheme", bearer, (card.security_schemes, card.security_requirements))

        # (b) non-streaming SendMessage: the answer comes back as one Task
        client = ClientFactory(ClientConfig(streaming=False, httpx_client=http)).create(card)
        events = [e async for e in client.send_message(request(text))]
        check("send message one response", len(events) == 1, events)
        check("send message returns a task", events[0].HasField("task"), events[0])
        task = events[0].task
        answer = task_text(task)
        print(f"   task {task.id}: {state_name(task.status.state)}: {answer!r}")
        check("send message completed", task.status.state == COMPLETED, state_name(task.status.state))
        check("send message answer", expected in answer, repr(answer))

        # (d) GetTask on that task; an unknown id is the SDK's TaskNotFoundError (-32001)
        got = await client.get_task(GetTaskRequest(id=task.id))
        check("get task", got.id == task.id and got.status.state == COMPLETED, got)
        check("get task answer", expected in task_text(got), repr(task_text(got)))
        try:
            await client.get_task(GetTaskRequest(id=str(uuid.uuid4())))
            check("get unknown task", False, "no error")
        except TaskNotFoundError:
            check("get unknown task", True)
        except A2AClientError as e:
            check("get unknown task", False, repr(e))

    # (c) streaming, with the token added by the SDK's AuthInterceptor from the card's scheme
    creds = InMemoryContextCredentialStore()
    await creds.set_credentials("s", bearer[0], token)
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        client = ClientFactory(ClientConfig(streaming=True, httpx_client=http)).create(
            card, interceptors=[AuthInterceptor(creds)]
        )
        events = []
        artifacts = {}
        async for event in client.send_message(
            request(text), context=ClientCallContext(state={"sessionId": "s"})
        ):
            events.append(event)
            kind = event.WhichOneof("payload")
            detail = ""
            if kind == "artifact_update":
                u = event.artifact_update
                chunk = get_artifact_text(u.artifact, delimiter="")
                key = u.artifact.artifact_id
                artifacts[key] = artifacts.get(key, "") + chunk if u.append else chunk
                detail = repr(chunk)
            elif kind in ("status_update", "task"):
                detail = state_name(getattr(event, kind).status.state)
            print(f"   event {kind} {detail}")
        check("stream events", len(events) >= 2, events)
        last = events[-1]
        kind = last.WhichOneof("payload")
        final = getattr(last, kind) if kind in ("status_update", "task") else None
        check(
            "stream ends completed",
            final is not None and final.status.state == COMPLETED,
            last,
        )
        streamed = "\n".join(artifacts.values())
        if final is not None and final.status.HasField("message"):
            streamed += "\n" + get_message_text(final.status.message)
        if kind == "task":
            streamed += "\n" + task_text(final)
        check("stream answer", expected in streamed, repr(streamed))

    # (e) a wrong token: the RPC is refused with HTTP 401 (the card may be public or not)
    async with bearer_client("not-a-" + token) as http:
        try:
            await A2ACardResolver(http, base).get_agent_card()
            print("   agent card is public")
        except AgentCardResolutionError as e:
            check("wrong token card", e.status_code == 401, repr(e))
        client = ClientFactory(ClientConfig(streaming=False, httpx_client=http)).create(card)
        try:
            events = [e async for e in client.send_message(request(text))]
            check("wrong token refused", False, events)
        except A2AClientError as e:
            check("wrong token refused", "401" in str(e), repr(e))
        client = ClientFactory(ClientConfig(streaming=True, httpx_client=http)).create(card)
        try:
            events = [e async for e in client.send_message(request(text))]
            check("wrong token stream refused", False, events)
        except A2AClientError as e:
            check("wrong token stream refused", "401" in str(e), repr(e))


try:
    asyncio.run(main())
except Exception as e:  # an SDK error outside the checks that expect one
    print(f"FAIL unexpected error: {e!r}")
    sys.exit(1)
print(f"a2a sdk: {passed} passed")
