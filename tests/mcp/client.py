"""Drives the relay's /mcp endpoint with the official MCP Python SDK (`mcp` on PyPI).

Reads a JSON job on stdin:
  {"url": ".../mcp", "token": "fcm_...", "mode": "session" | "auto",
   "calls": [{"name": "read_file", "args": {...}}, ...], "resources": true,
   "prompts": [{"name": "project/prompt", "args": {...}}, ...]}
and prints one JSON object: the negotiated protocol, the server's name, the tools listed (with
their input schemas and read-only hints), each call's result, the resources, and, with
"prompts", the prompts listed and each one asked for (its text, or the error).

With "await_tools_change": {"marker": PATH, "timeout": SECONDS} (mode "session"), it then
writes PATH, waits for a notifications/tools/list_changed, and lists the tools again
("tools_after"; null if none came in time).

mode "session" uses ClientSession.initialize() (protocol 2025-11-25); mode "auto" uses the
SDK's high-level Client, which probes for the newest protocol (2026-07-28) first.
"""

import asyncio
import json
import pathlib
import sys

from mcp import types

from mcp import Client, ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


def result_of(name, r):
    return {
        "name": name,
        "is_error": bool(r.is_error),
        "text": "\n".join(c.text for c in r.content if c.type == "text"),
        "structured": r.structured_content,
    }


async def run_calls(session, job, out):
    tools = (await session.list_tools()).tools
    out["tools"] = {
        t.name: {
            "schema": t.input_schema,
            "output_schema": t.output_schema,
            "read_only": t.annotations.read_only_hint if t.annotations else None,
        }
        for t in tools
    }
    out["calls"] = []
    for call in job.get("calls", []):
        try:
            r = await session.call_tool(call["name"], call.get("args", {}))
            out["calls"].append(result_of(call["name"], r))
        except Exception as e:  # a protocol error, e.g. an unknown tool
            out["calls"].append({"name": call["name"], "exception": repr(e)})
    if "prompts" in job:
        listed = (await session.list_prompts()).prompts
        out["prompts"] = {
            p.name: [a.name for a in (p.arguments or [])] for p in listed
        }
        out["prompt_texts"] = []
        for p in job["prompts"]:
            try:
                got = await session.get_prompt(p["name"], p.get("args", {}))
                out["prompt_texts"].append(
                    "".join(getattr(m.content, "text", "") for m in got.messages)
                )
            except Exception as e:  # a protocol error: no such prompt, a missing argument
                out["prompt_texts"].append({"exception": repr(e)})
    if job.get("resources"):
        listed = (await session.list_resources()).resources
        out["resources"] = [str(r.uri) for r in listed]
        out["resource_texts"] = {}
        for r in listed:
            read = await session.read_resource(r.uri)
            out["resource_texts"][str(r.uri)] = "".join(
                getattr(c, "text", "") for c in read.contents
            )


async def main():
    job = json.load(sys.stdin)
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {job['token']}"})
    out = {}
    if job.get("mode", "session") == "auto":
        transport = streamable_http_client(job["url"], http_client=http)
        async with http, Client(transport, mode="auto") as client:
            out["protocol"] = client.protocol_version
            out["server"] = client.server_info.name if client.server_info else None
            await run_calls(client, job, out)
    else:
        changed = asyncio.Event()

        async def on_message(message):
            if isinstance(message, types.ToolListChangedNotification):
                changed.set()

        async with http, streamable_http_client(job["url"], http_client=http) as (read, write):
            async with ClientSession(read, write, message_handler=on_message) as session:
                init = await session.initialize()
                out["protocol"] = init.protocol_version
                out["server"] = init.server_info.name
                out["list_changed"] = bool(
                    init.capabilities.tools and init.capabilities.tools.list_changed
                )
                await run_calls(session, job, out)
                wait = job.get("await_tools_change")
                if wait:
                    pathlib.Path(wait["marker"]).write_text("listening")
                    try:
                        await asyncio.wait_for(changed.wait(), wait["timeout"])
                        tools = (await session.list_tools()).tools
                        out["tools_after"] = [t.name for t in tools]
                    except asyncio.TimeoutError:
                        out["tools_after"] = None
    print(json.dumps(out))


asyncio.run(main())
