"""An independent MCP client for the integration suite: the official Python SDK (mcp 2.3.0).

Usage: mcp_client.py URL TOKEN MODE   (MODE is "auto" or "legacy" for a worker, "planner")
A worker lists the tools, then calls list_tasks, claim_task, get_task, report_progress,
send_message, read_messages and complete_task; a planner calls submit_plan with two tasks.
Every result that is not an error is checked against the output schema its tool published
(jsonschema, the SDK's own validator). Prints one JSON object with what it saw, for the Rust
test to check.
"""

import asyncio
import json
import sys

import httpx2
import jsonschema
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

WORKER_CALLS = [
    ("list_tasks", {}),
    ("claim_task", {}),
    ("get_task", {}),
    ("report_progress", {"note": "halfway"}),
    ("send_message", {"to": "all", "body": "hello"}),
    ("read_messages", {}),
    ("complete_task", {"summary": "done and checked"}),
]

PLAN = {
    "summary": "Two",
    "tasks": [
        {"id": t, "title": f"Task {t}", "description": f"Do {t}.",
         "acceptance_criteria": [f"{t} is done"], "files": [f"{t}.txt"], "depends_on": []}
        for t in ("a", "b")
    ],
}


async def main(url: str, token: str, mode: str) -> None:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"})
    sdk_mode = "auto" if mode == "planner" else mode
    async with Client(streamable_http_client(url, http_client=http), mode=sdk_mode) as client:
        tools = (await client.list_tools()).tools
        schemas = {t.name: t.output_schema for t in tools}
        calls = [("submit_plan", PLAN)] if mode == "planner" else WORKER_CALLS
        results, errors, checked, invalid = {}, {}, [], []
        for name, args in calls:
            r = await client.call_tool(name, args)
            results[name] = r.structured_content
            if r.is_error:
                errors[name] = r.structured_content
                continue
            try:
                jsonschema.validate(r.structured_content, schemas[name])
                checked.append(name)
            except jsonschema.ValidationError as e:
                invalid.append(f"{name}: {e.message} at {list(e.absolute_path)}")
        print(json.dumps({
            "tools": sorted(t.name for t in tools),
            "without_output_schema": sorted(n for n, s in schemas.items() if not s),
            "board": results.get("list_tasks"),
            "claim": results.get("claim_task"),
            "claim_is_error": "claim_task" in errors,
            "results": results,
            "errors": errors,
            "checked": checked,
            "invalid": invalid,
        }))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
