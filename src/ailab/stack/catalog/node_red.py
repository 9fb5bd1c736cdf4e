"""Node-RED: flow-based automation; runs natively from npm (node-red@4) or as a container."""

from __future__ import annotations

from ailab.stack.catalog._common import GATEWAY, lab_key, lab_key_ref
from ailab.stack.model import Backup, Component, Health, Native, NativeContext, Port, Volume


def _argv(ctx: NativeContext) -> list[str]:
    return ["--port", str(ctx.port), "--userDir", ctx.data_dir]


COMPONENT = Component(
    name="node-red",
    description="Node-RED flows (no login of its own: keep it private)",
    image="nodered/node-red",
    tag="4.0.9",
    phase=3,
    ports=(Port("http", 1880),),
    volumes=(Volume("data", "/data", "2Gi"),),
    env={"OPENAI_BASE_URL": GATEWAY, "OPENAI_API_KEY": lab_key_ref("node-red")},
    secrets=(lab_key("node-red"),),
    health=Health("http", "/", ("CMD", "curl", "-fsS", "http://127.0.0.1:1880/"), 20),
    backup=Backup(paths=("/data",)),
    depends_on=("ailab",),
    auth="none",
    native=Native(
        "node-red",
        _argv,
        "/",
        "npm install -g node-red@4 (Node 20 or newer)",
        {"OPENAI_BASE_URL": GATEWAY, "OPENAI_API_KEY": lab_key_ref("node-red")},
    ),
)
