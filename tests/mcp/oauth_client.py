"""Signs in to the relay's /mcp with the official MCP Python SDK's OAuth client provider: it
discovers the protected-resource and authorization-server metadata, registers itself (RFC 7591),
runs the authorization code flow with PKCE S256 and calls a tool. The "user" in between is this
script too: it logs in to the relay's REST API and approves the consent the dashboard would show.
Then it treats the access token as expired, so a second connection makes the SDK refresh it
(the refresh token rotates), and calls a tool again.

Reads a JSON job on stdin: {"base": "http://127.0.0.1:PORT", "email": ..., "password": ...}
and prints one JSON object: the client id, the scopes, both refresh tokens and access tokens
(so the caller can check rotation and replay), and the tool results.
"""

import asyncio
import json
import sys
import time
from urllib.parse import parse_qs, urlparse

import httpx2
from mcp import ClientSession
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata


class Storage:
    """Tokens and client registration in memory."""

    def __init__(self):
        self.tokens = None
        self.client = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client

    async def set_client_info(self, info):
        self.client = info


async def main():
    job = json.load(sys.stdin)
    base = job["base"]
    out = {"consents": 0}
    redirect = {"to": None}

    async with httpx2.AsyncClient() as web:
        r = await web.post(f"{base}/api/v1/auth/login",
                           json={"email": job["email"], "password": job["password"]})
        r.raise_for_status()
        access = r.json()["data"]["access_token"]

        async def redirect_handler(url):
            # The browser: the relay's authorize endpoint sends it to the consent page.
            r = await web.get(url)
            assert r.status_code in (302, 303, 307), (r.status_code, r.text)
            location = r.headers["location"]
            assert location.startswith("/#/authorize?"), location
            params = {k: v[0] for k, v in parse_qs(location.split("?", 1)[1]).items()}
            asked = await web.get(f"{base}/api/v1/oauth/requests", params=params,
                                  headers={"Authorization": f"Bearer {access}"})
            asked.raise_for_status()
            out["consent_page"] = asked.json()["data"]
            # The user allows it.
            body = {k: params.get(k) for k in ("client_id", "redirect_uri", "response_type",
                                              "code_challenge", "code_challenge_method",
                                              "scope", "state", "resource")}
            body = {k: v for k, v in body.items() if v is not None}
            body["approve"] = True
            answer = await web.post(f"{base}/api/v1/oauth/consent", json=body,
                                    headers={"Authorization": f"Bearer {access}"})
            answer.raise_for_status()
            redirect["to"] = answer.json()["data"]["redirect_to"]
            out["consents"] += 1

        async def callback_handler():
            q = {k: v[0] for k, v in parse_qs(urlparse(redirect["to"]).query).items()}
            return AuthorizationCodeResult(code=q["code"], state=q.get("state"), iss=q.get("iss"))

        storage = Storage()
        metadata = OAuthClientMetadata(
            client_name="SDK test client",
            redirect_uris=["http://127.0.0.1:33418/callback"],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            scope="read write run",
        )

        provider = OAuthClientProvider(
            server_url=f"{base}/mcp",
            client_metadata=metadata,
            storage=storage,
            redirect_handler=redirect_handler,
            callback_handler=callback_handler,
        )

        async def session_once(label):
            http = create_mcp_http_client(auth=provider)
            async with http, streamable_http_client(f"{base}/mcp", http_client=http) as (read, write):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    tools = (await session.list_tools()).tools
                    r = await session.call_tool("list_workspaces", {})
                    out[label] = {
                        "tools": sorted(t.name for t in tools),
                        "is_error": bool(r.is_error),
                        "text": "\n".join(c.text for c in r.content if c.type == "text"),
                    }

        await session_once("first")
        out["client_id"] = storage.client.client_id
        out["scope"] = storage.tokens.scope
        out["access_1"] = storage.tokens.access_token
        out["refresh_1"] = storage.tokens.refresh_token
        # The access token is treated as expired (an hour is long to wait): the next request
        # makes the provider refresh it.
        provider.context.token_expiry_time = time.time() - 1
        await session_once("second")
        out["access_2"] = storage.tokens.access_token
        out["refresh_2"] = storage.tokens.refresh_token
    print(json.dumps(out))


asyncio.run(main())
