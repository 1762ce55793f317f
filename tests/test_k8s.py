"""The training pod spec and every manifest in k8s/, validated offline (no cluster needed)."""

from __future__ import annotations

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
