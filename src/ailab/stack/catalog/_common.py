"""Small helpers shared by catalog modules."""

from __future__ import annotations

from ailab.stack.model import Health, Ref, SecretRef, SecretSpec

GATEWAY = Ref("ailab", "http", "/v1")


def wget_health(port: int, path: str, name: str = "http", start_period_s: int = 20) -> Health:
    """An HTTP check for images that ship busybox/wget."""
    return Health(
        name,
        path,
        ("CMD", "wget", "-q", "--spider", f"http://127.0.0.1:{port}{path}"),
        start_period_s,
    )


def curl_health(port: int, path: str, name: str = "http", start_period_s: int = 20) -> Health:
    return Health(name, path, ("CMD", "curl", "-fsS", f"http://127.0.0.1:{port}{path}"), start_period_s)


def lab_key(component: str) -> SecretSpec:
    """A virtual key of the lab, minted once for `component` (its usage shows up under that name)."""
    return SecretSpec(
        f"LAB_KEY_{component.upper().replace('-', '_')}", "lab_key", f"lab API key for {component}"
    )


def lab_key_ref(component: str) -> SecretRef:
    return SecretRef(lab_key(component).key)
