"""OpenAI's Responses API (`/v1/responses`) over the text-generation models.

`routes` parses and shapes, `service` plans a response (conversation, window,
sampling) and runs it through a `Backend` (the local models today; an upstream
provider can plug in the same way), `stream` writes the typed event sequence,
`models` keeps stored responses per user.
"""
