"""code-server: VS Code in the browser (compose / Kubernetes only: its npm build fails on many hosts)."""

from __future__ import annotations

from ailab.stack.catalog._common import GATEWAY, curl_health, lab_key, lab_key_ref
from ailab.stack.model import Backup, Component, Port, SecretRef, SecretSpec, Volume

COMPONENT = Component(
    name="code-server",
    description="VS Code in the browser (password login)",
    image="codercom/code-server",
    tag="4.98.2",
    phase=3,
    ports=(Port("http", 8080, host=8443),),
    volumes=(Volume("data", "/home/coder", "10Gi"),),
    env={
        "PASSWORD": SecretRef("CODE_SERVER_PASSWORD"),
        "OPENAI_BASE_URL": GATEWAY,
        "OPENAI_API_KEY": lab_key_ref("code-server"),
    },
    secrets=(lab_key("code-server"), SecretSpec("CODE_SERVER_PASSWORD", "password")),
    health=curl_health(8080, "/healthz"),
    backup=Backup(paths=("/home/coder",)),
    depends_on=("ailab",),
    auth="own",
)
