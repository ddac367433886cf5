"""The graph served to other programs: an OpenAI-compatible chat API (``arag serve``)."""
