"""What a graph runs with: the components it is built on, its typed state, and the trace every
node writes.
"""
