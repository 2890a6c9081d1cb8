"""The request edge: what every call meets before and after a feature's code.

`errors` (the one JSON error shape and its handlers), `guards` (body size, JSON
depth, ids), `validation` (the blueprint class and shared fields), `contract` and
`openapi` (the documented contract), `paging` (list pages) and `http` (the caller's
address, a body field for rate-limit keys). Nothing here knows a feature.
"""
