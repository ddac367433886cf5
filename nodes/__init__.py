"""Graph nodes, one module each: a body ``(state, run) -> partial update`` that
:func:`arag.runtime.frame.node` turns into the ``(state, config, *, components)`` the graph calls.
"""
