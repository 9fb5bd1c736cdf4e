"""nginx as the static upstream (a fixed chat completion, a fixed SSE stream) and as the proxy_pass floor."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

COMPLETION = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "bench",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello! How can I help you today?"},
            "finish_reason": "stop",
            "logprobs": None,
        }
    ],
    "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21},
}


def sse_body() -> str:
    base = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "bench",
    }
    events = [
        {
            **base,
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
        }
    ]
    events += [
        {**base, "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}]}
        for w in ("Hello", "!", " How", " can", " I", " help", "?")
    ]
    events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    events.append(
        {**base, "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21}}
    )
    return "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")


def config(workdir: Path, json_port: int, sse_port: int, proxy_json_port: int, proxy_sse_port: int) -> Path:
    conf = f"""
worker_processes 2;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {workdir}/body; proxy_temp_path {workdir}/proxy;
  fastcgi_temp_path {workdir}/fcgi; uwsgi_temp_path {workdir}/uwsgi; scgi_temp_path {workdir}/scgi;
  keepalive_requests 1000000;
  upstream json_up {{ server 127.0.0.1:{json_port}; keepalive 64; }}
  upstream sse_up {{ server 127.0.0.1:{sse_port}; keepalive 64; }}
  server {{ listen 127.0.0.1:{json_port};
    location / {{ default_type application/json; return 200 '{_escape(json.dumps(COMPLETION))}'; }} }}
  server {{ listen 127.0.0.1:{sse_port};
    location / {{ default_type text/event-stream; return 200 '{_escape(sse_body())}'; }} }}
  server {{ listen 127.0.0.1:{proxy_json_port};
    location / {{ proxy_pass http://json_up; proxy_http_version 1.1; proxy_set_header Connection ""; }} }}
  server {{ listen 127.0.0.1:{proxy_sse_port};
    location / {{ proxy_pass http://sse_up; proxy_http_version 1.1; proxy_set_header Connection "";
                 proxy_buffering off; }} }}
}}
"""
    path = workdir / "nginx.conf"
    path.write_text(conf)
    return path


def start(conf: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["nginx", "-c", str(conf), "-g", "daemon off;"], stderr=subprocess.DEVNULL)
