"""KServe's InferenceRESTClient against modelgate (issue 27): not part of the suite.

`kserve` pulls ~450 MB (kubernetes, fastapi, grpcio, pandas ...), so it stays out of the
project's requirements. To run the check by hand:

    python3 -m venv /tmp/kserve-venv && /tmp/kserve-venv/bin/pip install kserve==0.21.0
    .venv/bin/python scripts/kserve_check/run.py [/tmp/kserve-venv/bin/python]

This starts gunicorn (2 workers) on a scratch PostgreSQL database and the test Redis,
with the OCR model and all-MiniLM-L6-v2, mints a token, and runs `client.py` in the
kserve environment; it prints each check and whether it matched `/v1`.
"""

import io
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from api import create_app
from api.config import TestConfig
from api.extensions import db
from models.ocr.evaluate import find_fonts, load_font, render
from tests.conftest import scratch_database
from tests.services import REDIS_URL, gunicorn
from tests.tokens.conftest import make_account

KSERVE_PYTHON = sys.argv[1] if len(sys.argv) > 1 else "/tmp/kserve-venv/bin/python"
CLIENT = Path(__file__).with_name("client.py")
tmp = Path(tempfile.mkdtemp(prefix="kserve-check-"))
with scratch_database("kserve_try") as url:
    app = create_app(TestConfig(SQLALCHEMY_DATABASE_URI=url))
    token = make_account(app, "kserve@example.org").mint(scopes=("predict", "embed"))["token"]
    with app.app_context():
        db.engine.dispose()
    env = {
        "DATABASE_URL": url,
        "REDIS_URL": REDIS_URL,
        "RATE_LIMIT_DEFAULT": "1000/minute",
        "MODELS": "all-minilm-l6-v2,ocr-en=handler:models.ocr.handler:OCR",
    }
    with gunicorn(env, tmp, workers=2) as base:
        auth = {"Authorization": f"Bearer {token}"}
        for _ in range(240):
            if requests.get(f"{base}/v2/models/ocr-en/ready", headers=auth).status_code == 200:
                break
            time.sleep(0.5)
        fonts = find_fonts()
        image = render(["Invoice 4471 total 1250"], load_font(fonts[0] if fonts else None, 40))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        png = tmp / "page.png"
        png.write_bytes(buffer.getvalue())
        text = requests.post(
            f"{base}/v1/models/ocr-en/predict", headers=auth, files={"image": png.read_bytes()}
        ).json()["outputs"]["text"]
        emb = requests.post(
            f"{base}/v1/embeddings",
            headers=auth,
            json={"input": ["A frog prince.", "A royal amphibian, in a pond."]},
        ).json()
        Path(str(png) + ".expected.json").write_text(
            json.dumps({"text": text, "embeddings": [d["embedding"] for d in emb["data"]]})
        )
        done = subprocess.run(
            [KSERVE_PYTHON, str(CLIENT), base, token, str(png)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        print(done.stdout)
        print(done.stderr[-3000:])
