"""KServe's InferenceRESTClient (protocol v2) against modelgate; run by run.py in kserve's venv."""

import asyncio
import base64
import json
import sys
from pathlib import Path

import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.protocol.infer_type import RequestedOutput

base, token, png_path = sys.argv[1:4]
expected = json.loads(Path(png_path + ".expected.json").read_text())


async def main():
    client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=60))

    def auth() -> dict[str, str]:  # a fresh dict each call: clients add headers to it
        return {"Authorization": f"Bearer {token}"}

    print("is_server_live", await client.is_server_live(base, headers=auth()))
    print("is_server_ready", await client.is_server_ready(base, headers=auth()))
    print("is_model_ready ocr-en", await client.is_model_ready(base, "ocr-en", headers=auth()))
    png = Path(png_path).read_bytes()
    for binary in (True, False):
        image = InferInput("image", [1], "BYTES")
        data = [png] if binary else [base64.b64encode(png)]
        image.set_data_from_numpy(np.array(data, dtype=np.object_), binary_data=binary)
        outputs = [RequestedOutput("text", {"binary_data": binary})]
        request = InferRequest("ocr-en", infer_inputs=[image], request_outputs=outputs)
        result = await client.infer(base, request, model_name="ocr-en", headers=auth())
        text = result.outputs[0].as_numpy().tolist()
        text = [t.decode() if isinstance(t, bytes) else t for t in text]
        print("ocr binary" if binary else "ocr json", text == [expected["text"]], text)
    texts = [b"A frog prince.", b"A royal amphibian, in a pond."]
    for binary in (True, False):
        text = InferInput("text", [2], "BYTES")
        text.set_data_from_numpy(np.array(texts, dtype=np.object_), binary_data=binary)
        outputs = [RequestedOutput("embedding", {"binary_data": binary})]
        request = InferRequest("all-minilm-l6-v2", infer_inputs=[text], request_outputs=outputs)
        result = await client.infer(base, request, model_name="all-minilm-l6-v2", headers=auth())
        got = np.asarray(result.outputs[0].as_numpy(), dtype=np.float32).reshape(2, -1)
        diff = float(np.abs(got - np.array(expected["embeddings"], dtype=np.float32)).max())
        print("embedding binary" if binary else "embedding json", got.shape, "max diff", diff)
    try:
        image = InferInput("image", [1], "BYTES")
        image.set_data_from_numpy(np.array([png], dtype=np.object_))
        await client.infer(base, InferRequest("ocr-en", infer_inputs=[image]), model_name="ocr-en")
        print("no token: answered?!")
    except Exception as error:
        print("no token:", type(error).__name__, str(error)[:160])
    await client.close()


asyncio.run(main())
