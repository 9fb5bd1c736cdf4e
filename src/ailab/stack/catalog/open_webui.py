"""Open WebUI: chat UI; talks to models only through the lab's gateway."""

from __future__ import annotations

from ailab.stack.catalog._common import GATEWAY, curl_health, lab_key, lab_key_ref
from ailab.stack.model import Backup, Component, Port, Ref, SecretRef, SecretSpec, Volume

COMPONENT = Component(
    name="open-webui",
    description="Open WebUI chat interface, wired to the lab's gateway",
    image="ghcr.io/open-webui/open-webui",
    tag="v0.6.5",
    phase=1,
    ports=(Port("http", 8080, host=8080),),
    volumes=(Volume("data", "/app/backend/data", "10Gi"),),
    env={
        "OPENAI_API_BASE_URL": GATEWAY,
        "OPENAI_API_KEY": lab_key_ref("open-webui"),
        "ENABLE_OLLAMA_API": "false",  # every model call goes through the gateway (costed, limited)
        "WEBUI_SECRET_KEY": SecretRef("OPEN_WEBUI_SECRET_KEY"),
        "WEBUI_AUTH": "true",
        "ENABLE_SIGNUP": "false",
        "VECTOR_DB": "qdrant",
        "QDRANT_URI": Ref("qdrant", "http"),
        "QDRANT_API_KEY": SecretRef("QDRANT_API_KEY"),
    },
    secrets=(lab_key("open-webui"), SecretSpec("OPEN_WEBUI_SECRET_KEY", "token")),
    health=curl_health(8080, "/health", start_period_s=60),
    backup=Backup(paths=("/app/backend/data",)),
    depends_on=("ailab", "qdrant"),
    auth="own",
)
