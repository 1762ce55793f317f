"""The Kubernetes pod that runs the training entry point: a pure function of the recipe.

`training_command` is `python -m training.entrypoint` for one GPU and `accelerate launch` with one
process per GPU above that. `build_pod_spec` returns a PodSpec as plain camelCase data, which
`dagster_k8s.PipesK8sClient.run(base_pod_spec=...)` accepts as is and `kubernetes-validate` checks
offline; nothing here talks to a cluster.

What the pod gets, and why:
  - `nvidia.com/gpu` requests = limits (GPUs are not overcommittable), CPU and memory likewise, so
    the pod is in the Guaranteed QoS class and is the last to be evicted;
  - a memory-backed `/dev/shm`: NCCL and data-loader workers use shared memory, and the
    container runtime's default of 64 MB makes multi-GPU runs crash;
  - the storage root: a PersistentVolumeClaim mounted where the Dagster pods mount it (same paths
    in the run config), or an object store (s3:// paths, credentials from a Secret, local scratch);
  - the MLflow server's address; a non-root user, no privilege escalation, no capabilities.
"""

from __future__ import annotations

from typing import Any

from training.config import PodConfig

SCRATCH = "/scratch"


def training_command(*, gpus: int, config_path: str) -> list[str]:
    """The container command: one process, or `accelerate launch` with one process per GPU."""
    if gpus <= 1:
        return ["python", "-m", "training.entrypoint", "--config", config_path]
    return [
        "accelerate",
        "launch",
        "--multi_gpu",
        "--num_machines",
        "1",
        "--num_processes",
        str(gpus),
        "--mixed_precision",
        "bf16",
        "--module",
        "training.entrypoint",
        "--config",
        config_path,
    ]


def build_pod_spec(
    pod: PodConfig,
    *,
    config_path: str,
    storage_root: str,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A PodSpec (camelCase dict) running the entry point on `config_path`.

    In `pvc` mode `storage_root` and `config_path` must lie under `pod.mount_path`; in
    `object_store` mode they are URLs (s3://...) and the pod trains in local scratch.
    """
    if pod.gpus < 0:
        raise ValueError("gpus must be >= 0")
    if pod.storage == "pvc":
        for name, path in (("storage root", storage_root), ("config", config_path)):
            if "://" in path or not (
                path == pod.mount_path or path.startswith(pod.mount_path.rstrip("/") + "/")
            ):
                raise ValueError(f"{name} {path!r} is not under the claim's mount path {pod.mount_path!r}")
    elif "://" not in storage_root or "://" not in config_path:
        raise ValueError("object_store mode needs URL paths (s3://...) for the storage root and the config")

    resources: dict[str, dict[str, str]] = {
        "requests": {"cpu": pod.cpu, "memory": pod.memory},
        "limits": {"cpu": pod.cpu, "memory": pod.memory},
    }
    if pod.gpus:
        resources["requests"]["nvidia.com/gpu"] = str(pod.gpus)
        resources["limits"]["nvidia.com/gpu"] = str(pod.gpus)

    variables = {
        "CODECOOK_HOME": storage_root,
        "MLFLOW_TRACKING_URI": pod.mlflow_tracking_uri,
        "HF_HUB_OFFLINE": "1",  # nothing is downloaded at run time
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONUNBUFFERED": "1",  # log lines reach Dagster (through the pod log) as they happen
        "HOME": SCRATCH,  # a writable home for caches, the image's root filesystem stays clean
        "CODECOOK_SCRATCH": SCRATCH,
        **pod.extra_env,
        **(env or {}),
    }
    container: dict[str, Any] = {
        "name": "train",
        "image": pod.image,
        "imagePullPolicy": "IfNotPresent",
        "command": training_command(gpus=pod.gpus, config_path=config_path),
        "env": [{"name": k, "value": v} for k, v in variables.items()],
        "resources": resources,
        "volumeMounts": [
            {"name": "dshm", "mountPath": "/dev/shm"},
            {"name": "scratch", "mountPath": SCRATCH},
        ],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
        },
    }
    volumes: list[dict[str, Any]] = [
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": pod.shm_size}},
        {"name": "scratch", "emptyDir": {"sizeLimit": pod.scratch_size}},
    ]
    if pod.storage == "pvc":
        container["volumeMounts"].append({"name": "data", "mountPath": pod.mount_path})
        volumes.append({"name": "data", "persistentVolumeClaim": {"claimName": pod.pvc_name}})
    else:
        container["envFrom"] = [{"secretRef": {"name": pod.object_store_secret}}]

    return {
        "serviceAccountName": pod.service_account,
        # Never restart in place: a failed attempt is retried by Dagster's retry policy, which
        # starts a new pod that resumes from the last checkpoint on the shared storage.
        "restartPolicy": "Never",
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": pod.run_as_user,
            "runAsGroup": pod.run_as_user,
            "fsGroup": pod.run_as_user,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "nodeSelector": dict(pod.node_selector),
        "tolerations": [dict(t) for t in pod.tolerations],
        "containers": [container],
        "volumes": volumes,
    }


def build_pod_manifest(
    pod: PodConfig,
    *,
    name: str,
    config_path: str,
    storage_root: str,
    env: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The same pod as a complete `v1/Pod` object (what `kubectl apply` or a validator takes)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": pod.namespace,
            "labels": {"app.kubernetes.io/name": "codecook-train", **(labels or {})},
        },
        "spec": build_pod_spec(pod, config_path=config_path, storage_root=storage_root, env=env),
    }
