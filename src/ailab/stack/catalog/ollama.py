"""Ollama: local models; CPU, NVIDIA or AMD (ROCm) variant chosen from the detected GPU."""

from __future__ import annotations

from ailab.stack.model import Backup, Component, GpuVariant, Health, Port, Volume

COMPONENT = Component(
    name="ollama",
    description="Ollama local model server (the gateway's default local provider)",
    image="ollama/ollama",
    tag="0.6.2",
    phase=1,
    ports=(Port("http", 11434),),
    volumes=(Volume("data", "/root/.ollama", "100Gi"),),
    env={"OLLAMA_HOST": "0.0.0.0:11434", "OLLAMA_KEEP_ALIVE": "10m"},
    health=Health("http", "/api/version", ("CMD", "ollama", "list"), 10),
    backup=Backup(paths=("/root/.ollama",)),
    gpu="optional",
    gpu_variants={
        "cpu": GpuVariant(),
        "nvidia": GpuVariant(nvidia=True),
        "amd": GpuVariant(image_suffix="-rocm", devices=("/dev/kfd", "/dev/dri")),
    },
    auth="none",
)
