"""Two trees of the lab side by side: RPS of chat completions (json and stream) and of a stored streamed
`/v1/responses` (translated to the same upstream), c=32, 2 workers, of a base source tree and of this one,
alternating the order every round so that noise hits both alike.

    git worktree add --detach /tmp/ailab-base <commit>
    python -m bench ab --base-src /tmp/ailab-base/src [--seconds 5] [--rounds 4]
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from bench.common import free_port, require_tools
from bench.gateway import nginx
from bench.gateway.run import KEY, Ports, _bodies, _responses_bodies, measure, start_ailab, stop

THIS = Path(__file__).resolve().parents[2] / "src"


def run(base_src: Path, seconds: int, rounds: int, out_file: Path) -> dict[str, Any]:
    require_tools("nginx", "wrk")
    trees = {"base": base_src.resolve(), "this": THIS}
    work = Path(tempfile.mkdtemp(prefix="ailab-ab-"))
    ports = Ports(free_port(), free_port(), free_port(), free_port())
    ngx = nginx.start(nginx.config(work, ports.json, ports.sse, ports.proxy_json, ports.proxy_sse))
    rps: dict[str, dict[str, list[float]]] = {name: {mode: [] for mode in MODES} for name in trees}
    before = os.environ.get("PYTHONPATH")
    try:
        for r in range(rounds):
            order = list(trees.items()) if r % 2 == 0 else list(trees.items())[::-1]
            for name, src in order:
                os.environ["PYTHONPATH"] = str(src)  # the `ailab up` child imports this tree
                (work / f"{name}-{r}").mkdir()
                proc, url, _ = start_ailab(work / f"{name}-{r}", ports)
                auth = {"Authorization": f"Bearer {KEY}"}
                for path, bodies in _targets():
                    for row in measure(name, url + path, bodies, auth, seconds, proc.pid, 32):
                        rps[name][row.mode.split()[0]].append(row.rps)
                stop(proc)
    finally:
        if before is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = before
        stop(ngx)
    ratios = {mode: _mean(rps["this"][mode]) / _mean(rps["base"][mode]) for mode in MODES}
    for mode, ratio in ratios.items():
        print(
            f"{mode}: base {_mean(rps['base'][mode]):.0f} rps, this tree {_mean(rps['this'][mode]):.0f} rps, "
            f"ratio {ratio:.3f} (rounds {rps['base'][mode]} vs {rps['this'][mode]})"
        )
    result = {"base": str(base_src), "rounds": rounds, "seconds": seconds, "rps": rps, "ratios": ratios}
    out_file.write_text(json.dumps(result, indent=2))
    return result


MODES = ("json", "stream", "responses-stream")


def _targets() -> list[tuple[str, dict[str, dict[str, Any]]]]:
    """(path, {mode: body}) of each measured request, the modes as in MODES."""
    return [
        ("/v1/chat/completions", _bodies("bench-json", "bench-sse")),
        ("/v1/responses", {"responses-stream": _responses_bodies()["stream"]}),
    ]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)
