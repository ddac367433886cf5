"""From files to chunks: loaders, chunking, and the ingestor that writes them to the index."""
