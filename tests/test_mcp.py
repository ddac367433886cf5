"""`arag mcp`: the official ``mcp`` client against the server, over stdio and over streamable HTTP.

The server is the real command in a subprocess over a real small corpus, its chat model an
OpenAI-compatible double over HTTP, so ``ask`` runs the whole graph.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest
from documents import write_corpus
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from openai_double import OpenAIDouble
from servers import free_port, stop, wait_until

ANSWER = "Mara Olsen designed it [1]."


@pytest.fixture
def indexed(tmp_path, settings, embedder, ingestor):
    write_corpus(tmp_path / "docs")
    ingestor.ingest([tmp_path / "docs"], progress=False)
    return settings


def server_env(settings, llm_url: str) -> dict:
    return {**os.environ, "ARAG_DATA_DIR": str(settings.data_dir), "ARAG_LLM": "openai:double",
            "ARAG_LLM_BASE_URL": f"{llm_url}/v1", "ARAG_MODELS_DIR": str(settings.models_path), "OPENAI_API_KEY": "sk-test"}


async def exercise(client: Client) -> tuple[list[str], dict, dict, list]:
    tools = [t.name for t in (await client.list_tools()).tools]
    found = await client.call_tool("search_documents", {"query": "Who designed the Harbour Lighthouse?", "k": 3})
    asked = await client.call_tool("ask", {"question": "Who designed the Harbour Lighthouse?", "profile": "default"})
    resources = (await client.list_resources()).resources
    return tools, found.structured_content or json.loads(found.content[0].text), \
        asked.structured_content or json.loads(asked.content[0].text), resources


def check(tools, found, asked, resources, corpus) -> None:
    assert tools == ["search_documents", "ask"]
    passages = found["result"] if isinstance(found, dict) and "result" in found else found
    assert len(passages) == 3 and passages[0]["title"] == "Lighthouses"
    assert {"source", "title", "heading", "chunk_id", "relevance", "text"} <= set(passages[0])
    assert passages == sorted(passages, key=lambda p: -p["relevance"])
    assert asked["answer"] == ANSWER and asked["citations"][0]["n"] == 1 and asked["llm_calls"] >= 1
    assert {r.name for r in resources} >= {"Lighthouses", "Volcanoes"} and len(resources) == len(corpus)


def test_stdio_server_lists_tools_searches_and_answers(indexed, tmp_path):
    corpus = write_corpus(tmp_path / "docs")
    with OpenAIDouble(reply=ANSWER) as llm:
        params = StdioServerParameters(command=sys.executable, args=["-m", "arag", "mcp"], env=server_env(indexed, llm.url))

        async def run():
            async with Client(params) as client:
                result = await exercise(client)
                text = await client.read_resource(next(r.uri for r in result[3] if r.name == "Lighthouses"))
                return result, text

        (tools, found, asked, resources), text = asyncio.run(run())
    check(tools, found, asked, resources, corpus)
    assert "lighthouse" in text.contents[0].text.lower()


def test_http_server_lists_tools_searches_and_answers(indexed, tmp_path):
    corpus = write_corpus(tmp_path / "docs")
    port = free_port()
    log = tmp_path / "mcp.log"
    with OpenAIDouble(reply=ANSWER) as llm, log.open("w") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "arag", "mcp", "--transport", "http", "--port", str(port)],
                                env=server_env(indexed, llm.url), stdout=sink, stderr=subprocess.STDOUT)
        try:
            import socket

            def listening() -> bool:
                with socket.socket() as s:
                    return s.connect_ex(("127.0.0.1", port)) == 0

            wait_until(listening, proc, log, "arag mcp --transport http", seconds=90)

            async def run():
                async with Client(f"http://127.0.0.1:{port}/mcp") as client:
                    return await exercise(client)

            tools, found, asked, resources = asyncio.run(run())
        finally:
            stop(proc)
    check(tools, found, asked, resources, corpus)


def test_http_server_refuses_other_addresses(tmp_path):
    out = subprocess.run([sys.executable, "-m", "arag", "mcp", "--transport", "http", "--host", "0.0.0.0"],
                         capture_output=True, text=True, timeout=120, env={**os.environ, "ARAG_DATA_DIR": str(tmp_path)})
    assert out.returncode == 2 and "loopback only" in out.stderr
