"""A tiny stdio MCP server for one test: its `wait` tool writes a marker file, then sleeps, so
the test can cut the agent's connection while a call is in flight."""

import asyncio
import pathlib
import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer("slow")


@server.tool()
async def wait(seconds: float, marker: str) -> str:
    """Write `marker`, then sleep `seconds`."""
    pathlib.Path(marker).write_text("called")
    await asyncio.sleep(seconds)
    return "done"


if __name__ == "__main__":
    server.run("stdio")
