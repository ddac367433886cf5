"""Conversations: threads and their turns, checkpoints, and one question streamed through a graph."""
