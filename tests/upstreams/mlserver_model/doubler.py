"""A small deterministic model of MLServer's own runtime, served in the upstream tests.

`x` (FP32, [N, K]) in; `doubled` (2x, [N, K]) and `row_sum` (each row's sum, [N]) out.
Runs inside MLServer's venv (`.venv-mlserver`), never in the project's.
"""

from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class Doubler(MLModel):
    async def load(self) -> bool:
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = NumpyCodec.decode_input(payload.inputs[0]).astype("float32")
        x = x.reshape(x.shape[0], -1)
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            id=payload.id,
            outputs=[
                NumpyCodec.encode_output("doubled", x * 2),
                NumpyCodec.encode_output("row_sum", x.sum(axis=1)),
            ],
        )
