"""An independent MCP client for the integration suite: the official Python SDK (mcp 2.3.0).

Usage: mcp_client.py URL TOKEN MODE   (MODE is "auto" or "legacy")
Lists the tools, calls list_tasks and claim_task with the bearer token, and prints one JSON
object with what it saw, for the Rust test to check.
"""

import asyncio
import json
import sys

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client


async def main(url: str, token: str, mode: str) -> None:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"})
    async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
        tools = await client.list_tools()
        board = await client.call_tool("list_tasks", {})
        claim = await client.call_tool("claim_task", {})
        print(json.dumps({
            "tools": sorted(t.name for t in tools.tools),
            "board": board.structured_content,
            "claim": claim.structured_content,
            "claim_is_error": bool(claim.is_error),
        }))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
