"""Baselines for the GET benchmark: bare FastAPI apps with none of the kit's edge.

`/ping` answers at once; `/jobs/{id}` does what the kit's route does at its core (one
consistent DynamoDB GetItem through aioboto3) with no auth, middleware or model."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aioboto3
from fastapi import FastAPI, HTTPException


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    session = aioboto3.Session(region_name="us-east-1")
    async with session.client("dynamodb") as dynamodb:
        app.state.dynamodb = dynamodb
        yield


app = FastAPI(lifespan=lifespan)


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/ping")
async def ping() -> dict[str, str]:
    return {"pong": "ok"}


@app.get("/jobs/{job_id}")
async def get_job(job_id: str) -> dict[str, Any]:
    response = await app.state.dynamodb.get_item(
        TableName=os.environ["LONGHAUL_TABLE_NAME"],
        Key={"PK": {"S": f"JOB#{job_id}"}, "SK": {"S": "META"}},
        ConsistentRead=True,
    )
    if "Item" not in response:
        raise HTTPException(404)
    return {"id": response["Item"]["id"]["S"], "state": response["Item"]["state"]["S"]}
