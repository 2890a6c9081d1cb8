"""The model kinds the runtime serves: `embedding`, and `generation` (with `decoding`
and `chat_template`). The next kind, and the handler interface they share, go here.
"""
