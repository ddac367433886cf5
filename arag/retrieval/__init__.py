"""Finding chunks: dense and hybrid retrievers, metadata filters, and web search (Tavily)."""
