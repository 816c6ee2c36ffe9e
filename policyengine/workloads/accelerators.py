"""Which extended resources are accelerators by default, and which node labels name an accelerator product.

The default list holds the resource names the vendors' device plugins register (docs/accelerators.md
gives the source of each). A config's ``spec.gpu.resources`` replaces it, except that ``nvidia.com/gpu``,
``amd.com/gpu`` and ``nvidia.com/mig-*`` always count. A product is selected through any of ``PRODUCT_LABELS`` (``pods.product_constraint``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# The device-plugin resource names counted when the config names none. Order is the docs table's.
DEFAULT_ACCELERATORS: tuple[str, ...] = (
    "nvidia.com/gpu",
    "amd.com/gpu",
    "google.com/tpu",
    "aws.amazon.com/neuron",
    "aws.amazon.com/neuroncore",
    "aws.amazon.com/neurondevice",
    "habana.ai/gaudi",
    "gpu.intel.com/i915",
    "gpu.intel.com/xe",
)
MIG_PREFIX = "nvidia.com/mig-"
# Counted whatever list the config gives, as they always were: a config cannot drop NVIDIA or AMD GPUs.
ALWAYS_COUNTED: tuple[str, ...] = ("nvidia.com/gpu", "amd.com/gpu")

# Node labels whose value names the accelerator product a pod runs on.
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
TPU_ACCELERATOR_LABEL = "cloud.google.com/gke-tpu-accelerator"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
PRODUCT_LABELS: tuple[str, ...] = (GPU_PRODUCT_LABEL, TPU_ACCELERATOR_LABEL, INSTANCE_TYPE_LABEL)


def is_known_accelerator(resource: str) -> bool:
    """A well-known accelerator name, whatever list the config puts in force: what makes an AI workload."""
    return resource in DEFAULT_ACCELERATORS or resource.startswith(MIG_PREFIX)


def asks_for_accelerator(containers: Iterable[Mapping[str, Any]]) -> bool:
    """Whether any container's requests or limits name a well-known accelerator (one pass per map)."""
    for c in containers:
        resources = c.get("resources")
        if not isinstance(resources, Mapping):
            continue
        for part in ("requests", "limits"):
            entries = resources.get(part)
            if isinstance(entries, Mapping) and any(
                isinstance(n, str) and is_known_accelerator(n) for n in entries
            ):
                return True
    return False


def list_in_force(config: Mapping[str, Any] | None) -> str:
    """One line saying which accelerator list counts, for ``check --verbose``: the default one, or the
    config's (with the default names it leaves out, which are then neither charged nor reported)."""
    cfg = config if isinstance(config, Mapping) else {}
    if "gpu" not in cfg and isinstance(cfg.get("spec"), Mapping):
        cfg = cfg["spec"]
    gpu = cfg.get("gpu")
    given = gpu.get("resources") if isinstance(gpu, Mapping) else None
    names = [r for r in given if isinstance(r, str)] if isinstance(given, list) else None
    if names is None or sorted(names) == sorted(DEFAULT_ACCELERATORS):
        return f"accelerators counted: the default list ({', '.join(DEFAULT_ACCELERATORS)}) and {MIG_PREFIX}*"
    counted = sorted(set(names) | set(ALWAYS_COUNTED))
    left_out = [r for r in DEFAULT_ACCELERATORS if r not in counted]
    shown = ", ".join(counted[:20]) + (f" and {len(counted) - 20} more" if len(counted) > 20 else "")
    note = f"accelerators counted: spec.gpu.resources of the config ({shown}) and {MIG_PREFIX}*"
    return note + (f"; not counted: {', '.join(left_out)}" if left_out else "")
