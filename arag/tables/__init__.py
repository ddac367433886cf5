"""Structured data: tables registered at ingest, queried through guarded SQL."""
