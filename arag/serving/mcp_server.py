"""``arag mcp``: the collection as a Model Context Protocol server, for MCP-capable assistants.

Two tools and the documents:

- ``search_documents(query, k)``: the ``k`` most relevant passages (hybrid retrieval, then the
  app's calibrated relevance), each with its source, title, chunk id, relevance and text; no LLM
  call, so an assistant with its own model can read them and answer itself;
- ``ask(question, profile)``: the whole graph's answer, with its citations and notes;
- every ingested file as a resource (its ``file://`` URI), read as the text of its chunks.

Over stdio (an assistant starts ``arag mcp`` itself) or streamable HTTP on 127.0.0.1
(``arag mcp --transport http``). Built on the official ``mcp`` SDK's :class:`MCPServer`.

Example (in process, a scripted model):
    >>> import asyncio, tempfile
    >>> from mcp import Client
    >>> from langchain_core.language_models import FakeListChatModel
    >>> from arag.runtime.components import Components
    >>> from arag.settings import Settings
    >>> settings = Settings(data_dir=tempfile.mkdtemp())
    >>> server = build_server(Components(settings, llm=FakeListChatModel(responses=["hi"])))
    >>> async def tools():
    ...     async with Client(server) as client:
    ...         return [t.name for t in (await client.list_tools()).tools]
    >>> asyncio.run(tools())
    ['search_documents', 'ask']
"""

from __future__ import annotations

from pathlib import Path

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.resources.types import FunctionResource

from arag.index.catalog import list_files
from arag.runtime.components import Components
from graphs import build_graph

#: The profiles ``ask`` accepts, as in ``arag ask --profile`` ("default": the settings as they are).
PROFILES = ("default", "naive", "fast", "agentic")
#: Most passages one search returns.
MAX_K = 20


def _passage(chunk: dict) -> dict:
    """What a client is told of a passage, found or cited: where it is from and its text."""
    return {"source": chunk.get("source", ""), "title": chunk["title"], "heading": chunk.get("heading") or "",
            "chunk_id": chunk["chunk_id"], "text": chunk["text"]}


def _file_text(components: Components, file: str) -> str:
    """The file's chunks in their order, as the index holds them."""
    got = components.store.collection.get(where={"file": file}, include=["documents", "metadatas"])
    chunks = sorted(zip(got["metadatas"], got["documents"]), key=lambda pair: (pair[0].get("source", ""),
                                                                               pair[0].get("position", 0)))
    return "\n\n".join(text for _, text in chunks)


def build_server(components: Components) -> MCPServer:
    """The MCP server over these components (the collection, embedder, scorer and chat model)."""
    server = MCPServer("arag", instructions="Search and ask the user's indexed documents. search_documents returns "
                       "passages with their sources; ask returns a cited answer written by the local model.")
    graph = build_graph(components=components)

    @server.tool()
    def search_documents(query: str, k: int = 5) -> list[dict]:
        """The k passages most relevant to the query, best first: source, title, section heading, chunk id, relevance (0-1), text."""
        if not query.strip():
            raise ValueError("the query is empty")
        k = max(1, min(int(k), MAX_K))
        settings = components.settings
        hits, error, _ = components.search(settings, [query], max(settings.candidates, k))
        if error:
            raise RuntimeError(f"the document index could not be searched: {error}")
        judged = sorted(components.judge_for(settings).judge(query, hits, links=settings.link_expansion),
                        key=lambda c: -c["relevance"])
        return [_passage(c) | {"relevance": c["relevance"]} for c in judged[:k]]

    @server.tool()
    def ask(question: str, profile: str = "default") -> dict:
        """Answer the question from the documents: the answer with [n] citations, the cited passages, and notes."""
        if not question.strip():
            raise ValueError("the question is empty")
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; use one of {', '.join(PROFILES)}")
        configurable = {"profile": profile} if profile != "default" else {}
        state = graph.invoke({"question": question}, {"configurable": configurable})
        citations = [{"n": c["n"]} | _passage(c) for c in state.get("citations", [])]
        return {"answer": state.get("answer", ""), "citations": citations,
                "notes": list(dict.fromkeys(state.get("notes", []))), "llm_calls": state.get("llm_calls", 0)}

    for row in list_files(components.store):
        file = row["file"]
        uri = Path(file).resolve().as_uri() if file.startswith("/") else f"arag://file/{file}"
        server.add_resource(FunctionResource(
            uri=uri, name=row["title"] or Path(file).name, mime_type="text/plain",
            description=f"{row['kind']} file, {row['chunks']} chunks as indexed",
            fn=lambda file=file: _file_text(components, file)))
    return server


__all__ = ["PROFILES", "build_server"]
