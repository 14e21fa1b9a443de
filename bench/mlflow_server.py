"""MLflow's model registry as the comparison: its REST server on SQLite, from a virtual
environment of its own (MLflow is never a dependency of Podium), and a registered model whose
version 1 carries the alias ``champion``, the closest MLflow has to a track's champion."""

from __future__ import annotations

import shlex
import uuid
from pathlib import Path

import httpx

API = "/api/2.0/mlflow"


def mlflow_command(venv: Path, data: Path, port: int, workers: int) -> list[str]:
    """``mlflow server`` with a SQLite backend in ``data``; 4 workers is its default."""
    command = (f"{venv}/bin/mlflow server --backend-store-uri sqlite:///{data}/mlflow.db"
               f" --artifacts-destination {data}/mlartifacts --host 127.0.0.1 --port {port}")
    if workers != 4:
        command += f" --workers {workers}"
    return shlex.split(command)


def mlflow_champion(port: int) -> tuple[str, str]:
    """Register a model with one version aliased ``champion``; returns the path that resolves
    the alias and the version it must answer."""
    model = f"bench-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=f"http://127.0.0.1:{port}{API}", timeout=60) as http:
        http.post("/registered-models/create", json={"name": model}).raise_for_status()
        created = http.post("/model-versions/create",
                            json={"name": model, "source": f"s3://bench-bucket/{model}/v1"})
        created.raise_for_status()
        version = str(created.json()["model_version"]["version"])
        http.post("/registered-models/alias", json={"name": model, "alias": "champion",
                                                    "version": version}).raise_for_status()
    return f"{API}/registered-models/alias?name={model}&alias=champion", version
