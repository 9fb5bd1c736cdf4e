"""The typed catalog: what one component is, independent of where it runs.

Renderers (compose, Kubernetes, native) read these declarations; nothing here knows about YAML. Values that
point at another component (`Ref`, `HostPort`) or at a generated secret (`SecretRef`) stay symbolic until a
renderer resolves them for its target, so wiring is declared once and cannot drift between targets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

Auth = Literal["lab", "own", "none"]
Gpu = Literal["none", "optional", "required"]
SecretKind = Literal["password", "token", "key32", "lab_key", "user"]


@dataclass(frozen=True)
class Port:
    name: str
    number: int  # the container / Service port; other components reach it as `<component>:<number>`
    host: int | None = None  # compose: published on the host's loopback at this port; Kubernetes: ClusterIP
    protocol: Literal["TCP", "UDP"] = "TCP"


@dataclass(frozen=True)
class Ref:
    """A URL of another component's port, e.g. the gateway's OpenAI base URL."""

    component: str
    port: str = "http"
    path: str = ""
    scheme: str = "http"


@dataclass(frozen=True)
class HostPort:
    """`host:port` of another component, for settings that take no scheme."""

    component: str
    port: str


@dataclass(frozen=True)
class SecretRef:
    """A generated (or user-provided) secret, by its key in the catalog's secret namespace."""

    key: str


@dataclass(frozen=True)
class Join:
    """A value built from parts, e.g. a database URL that carries a password."""

    parts: tuple[str | Ref | HostPort | SecretRef, ...]


EnvValue = str | Ref | HostPort | SecretRef | Join


@dataclass(frozen=True)
class SecretSpec:
    key: str  # also the variable name in the rendered env file
    kind: SecretKind = "password"
    description: str = ""


@dataclass(frozen=True)
class Volume:
    name: str  # compose volume `{project}_{component}_{name}`; Kubernetes PVC `{component}-{name}`
    target: str
    size: str = "10Gi"


@dataclass(frozen=True)
class Health:
    port: str = "http"
    path: str | None = None  # HTTP GET path; None means a TCP check
    command: tuple[str, ...] = ()  # compose healthcheck test (inside the image); empty: none in compose
    start_period_s: int = 20
    live_path: str | None = None  # Kubernetes liveness (process alive), when it differs from readiness


@dataclass(frozen=True)
class Scale:
    """A component that runs as several replicas on Kubernetes (a StatefulSet: one data volume each)."""

    requests: dict[str, str] = field(default_factory=dict)  # container resources, e.g. {"cpu": "250m"}
    limits: dict[str, str] = field(default_factory=dict)
    # Env vars whose values (URLs that embed a password) go into the Secret under their own names, so an
    # external service can be configured by putting its URL there instead.
    secret_env: tuple[str, ...] = ()


@dataclass(frozen=True)
class MetricsEndpoint:
    port: str = "http"
    path: str = "/metrics"
    bearer_secret: str | None = None  # secret key sent as a bearer token (the lab's /metrics beyond loopback)


@dataclass(frozen=True)
class Backup:
    paths: tuple[str, ...] = ()  # inside the container (volumes to archive)
    dump: tuple[str, ...] = ()  # a command whose stdout is a consistent dump


@dataclass(frozen=True)
class ConfigFile:
    """A file the renderer writes under `config/<component>/<path>` and mounts read-only at `target`."""

    path: str
    target: str
    content: str
    secret_key: str | None = None  # mount this secret's value instead of `content`


@dataclass(frozen=True)
class NativeContext:
    """What a native recipe needs: where to keep data, which ports, how to reach the others."""

    data_dir: str
    port: int
    ports: dict[str, int]  # component -> host port, for wiring on 127.0.0.1
    running_as_root: bool
    host: str = "127.0.0.1"  # the bind address (the lab honours `ailab up --host`; others stay on loopback)


@dataclass(frozen=True)
class Native:
    """How to run the component on the host (a child of `ailab up --runtime native`)."""

    executable: str  # looked up on PATH (and next to the Python interpreter)
    argv: Callable[[NativeContext], list[str]]
    health_path: str | None = "/"
    install_hint: str = ""
    env: dict[str, EnvValue] = field(default_factory=dict)


@dataclass(frozen=True)
class GpuVariant:
    image_suffix: str = ""  # appended to the tag, e.g. "-rocm"
    devices: tuple[str, ...] = ()  # host device files (AMD: /dev/kfd, /dev/dri)
    nvidia: bool = False


@dataclass(frozen=True)
class Component:
    name: str
    description: str
    image: str
    tag: str
    phase: int
    ports: tuple[Port, ...] = ()
    volumes: tuple[Volume, ...] = ()
    env: dict[str, EnvValue] = field(default_factory=dict)
    secrets: tuple[SecretSpec, ...] = ()
    health: Health | None = None
    metrics: MetricsEndpoint | None = None
    backup: Backup | None = None
    depends_on: tuple[str, ...] = ()
    command: tuple[str, ...] = ()
    gpu: Gpu = "none"
    gpu_variants: dict[str, GpuVariant] = field(default_factory=dict)
    auth: Auth = "none"  # what stands in front of its HTTP port when published
    group: str | None = None  # `ailab install dify` installs every member of the dify group
    native: Native | None = None
    files: Callable[[RenderContext], list[ConfigFile]] | None = None
    postgres_databases: tuple[str, ...] = ()  # created by the postgres component's init script
    user: str | None = None
    privileged_mounts: tuple[tuple[str, str], ...] = ()  # (host path, container path), read-only
    scale: Scale | None = None
    # A one-shot job (e.g. provisioning another component through its API): compose restarts it until it
    # succeeds, Kubernetes runs it as a Job; it has no ports, health check or data.
    job: bool = False

    @property
    def image_ref(self) -> str:
        return f"{self.image}:{self.tag}"

    def port(self, name: str) -> Port:
        for p in self.ports:
            if p.name == name:
                return p
        raise KeyError(f"component {self.name} has no port named {name!r}")


@dataclass(frozen=True)
class PublicRoute:
    """A hostname on the internet that reaches `component` (always through Traefik)."""

    component: str
    host: str
    via: Literal["traefik", "cloudflared", "tailscale"] = "traefik"


@dataclass(frozen=True)
class RenderContext:
    """The selection being rendered; config-file builders use it to wire only what is present."""

    components: dict[str, Component]
    project: str = "ailab"
    target: Literal["cluster", "native"] = "cluster"
    native_ports: dict[str, int] = field(default_factory=dict)
    budget_usd: float = 100.0  # the 30-day spend the budget alert measures against
    routes: tuple[PublicRoute, ...] = ()
    # The user's ailab.yaml with its credentials already moved out (stack/labconfig.py), for the lab's
    # container config; empty renders the lab on defaults.
    lab_config: dict[str, Any] = field(default_factory=dict)

    def has(self, name: str) -> bool:
        return name in self.components

    def address(self, component: str, port: str) -> str:
        """`host:port` as seen from another component on this target."""
        if self.target == "native":
            return f"127.0.0.1:{self.native_ports[component]}"
        return f"{component}:{self.components[component].port(port).number}"

    def url(self, ref: Ref) -> str:
        return f"{ref.scheme}://{self.address(ref.component, ref.port)}{ref.path}"

    def url_of(self, component: str, port: str = "http") -> str:
        return self.url(Ref(component, port))
