"""The ceiling for resolving a champion: the same FastAPI and uvicorn settings as
``registry serve``, one handler returning a constant. ``bench/resolve.py`` starts it as
``python bench/bare_server.py PORT [LOG_LEVEL]``."""

from __future__ import annotations

import json
import sys

import uvicorn
from fastapi import FastAPI, Response

CONSTANT = json.dumps({"version_id": "v1-linear-20250630-00000000", "track": "equities-daily",
                       "bundle_path": "models/equities-daily/v1-linear-20250630-00000000",
                       "bundle_digest": "0" * 64,
                       "champion_since": "2025-07-01T00:00:00Z"}).encode()
# what `registry serve` passes to uvicorn.run
UVICORN_OPTIONS = {"host": "127.0.0.1", "access_log": False, "server_header": False}

app = FastAPI()


@app.get("/api/v1/tracks/{track}/champion")
async def champion(track: str) -> Response:
    return Response(CONSTANT, media_type="application/json")


@app.get("/api/v1/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


if __name__ == "__main__":
    port, log_level = int(sys.argv[1]), (sys.argv[2] if len(sys.argv) > 2 else "info")
    uvicorn.run(app, port=port, log_level=log_level, **UVICORN_OPTIONS)
