"""The training pod spec and every manifest in k8s/, validated offline (no cluster needed)."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from training.config import PodConfig, TrainConfig, from_dict
from training.podspec import build_pod_manifest, build_pod_spec, training_command

K8S = Path(__file__).resolve().parent.parent / "k8s"
VERSION = "1.37.0"


def validate(resource: dict) -> None:
    # strict: a misspelt field (e.g. `tolerations` inside the container) fails instead of vanishing.
    kubernetes_validate.validate(resource, VERSION, strict=True)


def pod_for(pod: PodConfig, **kwargs) -> dict:
    defaults = {
        "config_path": "/data/codecook/data/checkpoint/runs/abc/run.yaml",
        "storage_root": "/data/codecook",
    }
    return build_pod_manifest(pod, name="codecook-train-test", **{**defaults, **kwargs})


@pytest.mark.parametrize("gpus", [0, 1, 8])
def test_pod_spec_validates_against_the_kubernetes_schema(gpus):
    manifest = pod_for(PodConfig(gpus=gpus))
    validate(manifest)
    container = manifest["spec"]["containers"][0]
    limits = container["resources"]["limits"]
    assert (limits.get("nvidia.com/gpu") == str(gpus)) if gpus else "nvidia.com/gpu" not in limits
    assert container["resources"]["requests"] == limits  # Guaranteed QoS
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in manifest["spec"]["volumes"]}
    assert volumes[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory"
    assert volumes[mounts["/data"]]["persistentVolumeClaim"]["claimName"] == "codecook-data"
    assert (
        manifest["spec"]["securityContext"]["runAsNonRoot"]
        and manifest["spec"]["securityContext"]["runAsUser"] == 1000
    )
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["MLFLOW_TRACKING_URI"].startswith("http://mlflow.")
    assert manifest["spec"]["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert manifest["spec"]["restartPolicy"] == "Never"


def test_several_gpus_use_accelerate_launch_one_process_per_gpu():
    command = training_command(gpus=4, config_path="/data/run.yaml")
    assert command[:2] == ["accelerate", "launch"]
    assert command[command.index("--num_processes") + 1] == "4"
    assert command[command.index("--module") + 1] == "training.entrypoint"
    assert training_command(gpus=1, config_path="/data/run.yaml") == [
        "python", "-m", "training.entrypoint", "--config", "/data/run.yaml",
    ]  # fmt: skip


def test_object_store_mode_uses_secrets_and_scratch_instead_of_a_claim():
    manifest = pod_for(
        PodConfig(storage="object_store", gpus=2),
        config_path="s3://bucket/codecook/data/checkpoint/runs/abc/run.yaml",
        storage_root="s3://bucket/codecook",
    )
    validate(manifest)
    container = manifest["spec"]["containers"][0]
    assert container["envFrom"] == [{"secretRef": {"name": "codecook-object-store"}}]
    assert "persistentVolumeClaim" not in str(manifest["spec"]["volumes"])
    assert "/scratch" in {m["mountPath"] for m in container["volumeMounts"]}


def test_paths_outside_the_claim_are_refused():
    with pytest.raises(ValueError, match="mount path"):
        build_pod_spec(PodConfig(), config_path="/home/me/run.yaml", storage_root="/data/codecook")
    with pytest.raises(ValueError, match="URL"):
        build_pod_spec(PodConfig(storage="object_store"), config_path="/data/run.yaml", storage_root="/data")


def test_dagster_k8s_builds_the_pod_body_from_our_spec():
    from dagster_k8s.pipes import build_pod_body

    spec = build_pod_spec(
        PodConfig(gpus=2), config_path="/data/codecook/run.yaml", storage_root="/data/codecook"
    )
    body = build_pod_body(
        pod_name="dagster-run-abc-checkpoint",
        image=None,
        command=None,
        env_vars={"DAGSTER_PIPES_CONTEXT": "e30=", "DAGSTER_PIPES_MESSAGES": "e30="},
        base_pod_meta={"labels": {"app.kubernetes.io/name": "codecook-train"}},
        base_pod_spec=spec,
    )
    container = body.spec.containers[0]
    assert container.resources.limits["nvidia.com/gpu"] == "2"
    assert container.command[:2] == ["accelerate", "launch"]
    assert {"DAGSTER_PIPES_CONTEXT", "MLFLOW_TRACKING_URI"} <= {e.name for e in container.env}
    assert body.spec.volumes[0].empty_dir.medium == "Memory"
    assert body.spec.security_context.run_as_non_root
    # The body dagster-k8s would submit is itself a valid v1 Pod.
    from kubernetes import client

    validate(client.ApiClient().sanitize_for_serialization(body) | {"apiVersion": "v1", "kind": "Pod"})


def test_the_recipe_builds_the_pod_config():
    training = from_dict(TrainConfig, {"launcher": "k8s", "k8s": {"gpus": 8, "node_selector": {"pool": "h100"},
                                                                  "tolerations": [{"key": "gpu", "operator": "Exists"}]}})  # fmt: skip
    assert training.k8s.gpus == 8 and training.k8s.tolerations == ({"key": "gpu", "operator": "Exists"},)
    validate(pod_for(training.k8s))


def manifests() -> list[tuple[str, dict]]:
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document and "kind" in document:
                found.append((f"{path.name}:{document['kind']}/{document['metadata']['name']}", document))
    return found


def test_every_manifest_in_k8s_validates():
    found = manifests()
    kinds = {name.split(":")[1].split("/")[0] for name, _ in found}
    assert {"Namespace", "PersistentVolumeClaim", "ServiceAccount", "Role", "RoleBinding", "Secret",
            "Deployment", "Service", "Job"} <= kinds  # fmt: skip
    for name, document in found:
        try:
            validate(document)
        except kubernetes_validate.ValidationError as error:
            raise AssertionError(f"{name}: {error}") from None


def test_rbac_lets_the_run_pods_create_follow_and_delete_training_pods():
    documents = {d["kind"]: d for _, d in manifests() if d["metadata"]["name"].startswith("codecook-pipes")}
    rules = documents["Role"]["rules"]
    pods = next(r for r in rules if r["resources"] == ["pods"])
    assert {"create", "get", "watch", "delete"} <= set(pods["verbs"])
    assert any(r["resources"] == ["pods/log"] and "get" in r["verbs"] for r in rules)
    values = yaml.safe_load((K8S / "dagster-values.yaml").read_text())
    subject = documents["RoleBinding"]["subjects"][0]
    assert subject["name"] == values["serviceAccount"]["name"] == values["global"]["serviceAccountName"]


def test_helm_values_use_the_k8s_run_launcher_and_postgres():
    values = yaml.safe_load((K8S / "dagster-values.yaml").read_text())
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert launcher["volumeMounts"][0]["mountPath"] == "/data"
    assert launcher["volumes"][0]["persistentVolumeClaim"]["claimName"] == "codecook-data"
    assert values["postgresql"]["enabled"] is True
    deployment = values["dagster-user-deployments"]["deployments"][0]
    assert deployment["dagsterApiGrpcArgs"] == ["--module-name", "orchestration.definitions"]
    # The env, volumes and mounts of the chart are Kubernetes objects too: validate them in a pod.
    probe = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "values-probe"},
        "spec": {
            "containers": [{"name": "c", "image": "x", "volumeMounts": deployment["volumeMounts"],
                            "resources": launcher["runK8sConfig"]["containerConfig"]["resources"]}],
            "volumes": deployment["volumes"],
        },
    }  # fmt: skip
    validate(probe)


def test_training_dockerfile_runs_as_non_root_and_ships_only_training():
    text = (K8S / "Dockerfile.train").read_text()
    assert "USER 1000:1000" in text and "COPY training/ /app/training/" in text
    assert "pyspark" not in text and "dagster==" not in text


# --------------------------------------------------------------------------------------------------
# Pipes through the pod log, with a stand-in for the cluster

# What the training image sets (k8s/Dockerfile.train: ENV, WORKDIR /app holding training/).
IMAGE_ENV = {
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
    "HF_HUB_OFFLINE": "1",
    "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
}


def kube_timestamp(ns: int) -> str:
    """RFC 3339 with nanoseconds, as `kubectl logs --timestamps` prints it."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"


class OneNodeCluster:
    """Stands in for the API server, the kubelet and the container runtime: the `CoreV1Api` methods
    that dagster-k8s calls, answered from a local process instead of a node.

    `create_namespaced_pod` runs the pod's first container as a subprocess: its command (with
    `python` meaning this interpreter, as in the image), the container's env exactly as submitted
    (nothing inherited from this process but PATH and the image's ENV), emptyDir mounts as fresh
    folders, and the claim mounted at the same path as on the Dagster side (the PVC mode). Its
    stdout and stderr are kept as the container runtime keeps them, one line per write with a
    unique nanosecond timestamp; `read_namespaced_pod_log` returns them as the Kubernetes client's
    HTTP response iterates with `_preload_content=False` (whole lines, as bytes), following the
    container until it exits. `list_namespaced_pod` reports the container running (ready) or
    terminated with the process's exit code.
    """

    def __init__(self, root: Path):
        self.root = root
        self.pods: dict[str, dict] = {}
        self.deleted: list[str] = []

    # -- the CoreV1Api surface used by PipesK8sClient, PipesK8sPodLogsMessageReader, wait_for_pod

    def create_namespaced_pod(self, namespace, body):
        import subprocess

        name = body.metadata.name
        (container,) = body.spec.containers
        volumes = {volume.name: volume for volume in body.spec.volumes}
        folders: dict[str, Path] = {}
        for mount in container.volume_mounts:
            volume = volumes[mount.name]
            if volume.persistent_volume_claim is not None:
                assert Path(mount.mount_path).is_dir(), f"claim not at {mount.mount_path} here"
            elif volume.empty_dir is not None and mount.mount_path != "/dev/shm":
                folders[mount.mount_path] = self.root / name / mount.name
                folders[mount.mount_path].mkdir(parents=True)

        def on_node(value: str) -> str:
            for mount_path, folder in folders.items():
                if value == mount_path or value.startswith(mount_path + "/"):
                    return str(folder) + value[len(mount_path) :]
            return value

        env = {"PATH": os.environ["PATH"], **IMAGE_ENV}
        env.update({variable.name: on_node(variable.value) for variable in container.env})
        command = [*container.command, *(container.args or [])]
        assert command[0] == "python", f"only the one-process command runs here (no GPUs): {command}"
        workdir = self.root / name / "workdir"
        workdir.mkdir(parents=True)
        process = subprocess.Popen(
            [sys.executable, *command[1:]], cwd=workdir, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        pod = {"body": body, "process": process, "lines": [], "open": 2, "last_ns": 0}
        pod["changed"] = threading.Condition()
        self.pods[name] = pod
        for stream_name, stream in (("stdout", process.stdout), ("stderr", process.stderr)):
            threading.Thread(target=self._capture, args=(pod, stream_name, stream), daemon=True).start()

    def list_namespaced_pod(self, namespace, field_selector):
        from kubernetes import client

        name = field_selector.removeprefix("metadata.name=")
        if name not in self.pods:
            return client.V1PodList(items=[])
        pod = self.pods[name]
        # Both streams at EOF: the container has exited (reap it rather than report it running).
        code = pod["process"].poll() if pod["open"] else pod["process"].wait()
        state = (
            client.V1ContainerState(running=client.V1ContainerStateRunning())
            if code is None
            else client.V1ContainerState(terminated=client.V1ContainerStateTerminated(exit_code=code))
        )
        container = pod["body"].spec.containers[0]
        status = client.V1ContainerStatus(
            name=container.name, image=container.image, image_id="", ready=code is None,
            restart_count=0, state=state,
        )  # fmt: skip
        return client.V1PodList(
            items=[client.V1Pod(metadata=pod["body"].metadata, spec=pod["body"].spec,
                                status=client.V1PodStatus(container_statuses=[status]))]
        )  # fmt: skip

    def read_namespaced_pod_log(self, name, namespace, *, container=None, follow=False,
                                timestamps=False, since_seconds=None, tail_lines=None,
                                _preload_content=True, _request_timeout=None):  # fmt: skip
        pod = self.pods[name]

        def lines():
            seen = 0
            while True:
                with pod["changed"]:
                    while follow and pod["open"] and len(pod["lines"]) == seen:
                        pod["changed"].wait()
                    new, done = pod["lines"][seen:], not (follow and pod["open"])
                seen += len(new)
                for stamp, _, text in new:
                    yield ((f"{stamp} " if timestamps else "") + text + "\n").encode()
                if done:
                    return

        if _preload_content:  # wait_for_pod's failure report: the tail as one string
            return b"".join(list(lines())[-(tail_lines or 0) :]).decode()
        return lines()

    def delete_namespaced_pod(self, name, namespace):
        if self.pods[name]["process"].poll() is None:
            self.pods[name]["process"].kill()
        self.deleted.append(name)

    # -- the container runtime

    def _capture(self, pod: dict, stream_name: str, stream) -> None:
        for raw in iter(stream.readline, b""):
            with pod["changed"]:
                pod["last_ns"] = max(time.time_ns(), pod["last_ns"] + 1)
                text = raw.decode("utf-8", "replace").rstrip("\n")
                pod["lines"].append((kube_timestamp(pod["last_ns"]), stream_name, text))
                pod["changed"].notify_all()
        with pod["changed"]:
            pod["open"] -= 1
            pod["changed"].notify_all()


@pytest.mark.slow
def test_the_k8s_launcher_receives_logs_and_the_materialization_through_the_pod_log(
    home, tmp_path, monkeypatch
):
    """`training.launcher: k8s` end to end, without a cluster and without a shared message file.

    Real dagster / dagster-k8s code on the way: the `checkpoint` asset and `launch_training`,
    `PipesK8sClient.run` (its default `PipesEnvContextInjector` and `PipesK8sPodLogsMessageReader`),
    `build_pod_body` on our `build_pod_spec`, `DagsterKubernetesClient` and its `wait_for_pod`,
    `PipesK8sPodLogsMessageReader.consume_pod_logs` (`_process_log_stream`,
    `extract_message_or_forward_to_stdout`) and Dagster's Pipes message handler; in the "pod",
    `python -m training.entrypoint` with `open_dagster_pipes` and its default loaders and writer.
    Stand-ins: `OneNodeCluster` for the Kubernetes API server, kubelet and container runtime
    (see its docstring); `_load_k8s_config` does nothing (there is no kubeconfig); the MLflow
    server is a SQLite store in the storage root.
    """
    from dagster_k8s import PipesK8sClient
    from dagster_k8s.client import DagsterKubernetesClient
    from dagster_pipes import DAGSTER_PIPES_CONTEXT_ENV_VAR, DAGSTER_PIPES_MESSAGES_ENV_VAR, decode_param

    from tests._pipes import assert_reported_through_pipes, materialize_checkpoint, write_recipe

    cluster = OneNodeCluster(tmp_path / "node")
    production_client = DagsterKubernetesClient.production_client
    monkeypatch.setattr(
        DagsterKubernetesClient,
        "production_client",
        staticmethod(lambda **_: production_client(core_api_override=cluster)),
    )
    monkeypatch.setattr(PipesK8sClient, "_load_k8s_config", lambda self: None)
    recipe = write_recipe(
        tmp_path / "recipe.yaml", "k8s-pipes-test", steps=8,
        training_extra="  launcher: k8s\n"
        f"  k8s: {{gpus: 0, mount_path: '{home}', mlflow_tracking_uri: 'sqlite:///{home}/mlflow.db',"
        " extra_env: {OMP_WAIT_POLICY: PASSIVE}}\n",
    )  # fmt: skip
    result, instance = materialize_checkpoint(home, recipe, checks=False)  # the subprocess test has them
    reported = assert_reported_through_pipes(result, instance, steps=8)

    ((name, pod),) = cluster.pods.items()
    assert f" pid {pod['process'].pid} " in reported["reported_by"]  # the pod's process reported
    assert name in cluster.deleted and pod["process"].returncode == 0
    env = {variable.name: variable.value for variable in pod["body"].spec.containers[0].env}
    # What the pod-log reader asked for, and what the entry point honoured: messages on stderr.
    assert decode_param(env[DAGSTER_PIPES_MESSAGES_ENV_VAR]) == {"stdio": "stderr"}
    context = decode_param(env[DAGSTER_PIPES_CONTEXT_ENV_VAR])["data"]
    assert context["asset_keys"] == ["checkpoint"] and context["extras"]["run_dir"] == reported["output_dir"]
    messages = [
        (stream, json.loads(text)) for _, stream, text in pod["lines"] if "__dagster_pipes_version" in text
    ]
    assert {stream for stream, _ in messages} == {"stderr"}
    methods = [message["method"] for _, message in messages]
    assert methods[0] == "opened" and methods[-1] == "closed"
    assert methods.count("report_asset_materialization") == 1 and "log" in methods
    # Ordinary output shares the log with the messages (and is forwarded to stdout, not parsed).
    assert any(stream == "stdout" and text.startswith("step 4/8 loss ") for _, stream, text in pod["lines"])
    manifest = json.loads((home / "data/checkpoint/_manifest.json").read_text())
    assert manifest["mlflow_run_id"] == reported["mlflow_run_id"]
    assert manifest["hf_model_dir"] == reported["hf_model_dir"]
