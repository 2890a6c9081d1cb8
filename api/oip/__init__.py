"""The Open Inference Protocol (KServe V2, Triton's HTTP/REST) in front of the local models.

`/v2`, `/v2/health/{live,ready}`, `/v2/models/{name}[/versions/1][/ready|/infer]`, with
JSON tensors and Triton's binary tensor data extension, for every handler model and
every embedding model, behind the same tokens, scopes, budget, slots, metering and
trace ids as `/v1`. `codec` reads and writes the wire format (JSON and binary tensors),
`tensors` maps a handler's declaration to tensors and back, `service` answers the
protocol's calls without the request, `routes` is the HTTP surface and the one place
where the house error shape becomes the protocol's `{"error": "..."}` (docs/oip.md).
"""
