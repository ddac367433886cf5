"""Graph nodes, one module each: plain functions ``(state, *, components) -> partial update``."""
