"""Drives the TEST STAND-IN Trainer v2 and JobSet with the official `kubeflow` SDK from PyPI, as
a Trainer user would: list the runtimes, train a CustomTrainer whose function prints its rank,
wait with `wait_for_job_status`, read `get_job` and `get_job_logs`, then a trainer that fails.
Prints one JSON object of what it saw; tests/run_trainer.rs asserts on it.

Usage: sdk_check.py NAMESPACE IMAGE   (KUBECONFIG names the cluster)
"""

import json
import sys

from kubeflow.common.types import KubernetesBackendConfig
from kubeflow.trainer import CustomTrainer, TrainerClient

namespace, image = sys.argv[1], sys.argv[2]
client = TrainerClient(KubernetesBackendConfig(namespace=namespace))
seen = {}

runtimes = client.list_runtimes()
seen["runtimes"] = sorted(r.name for r in runtimes)
torch = next(r for r in runtimes if r.name == "torch-distributed")
seen["torch_framework"] = torch.trainer.framework


def prints_its_rank():
    import os

    import torch.distributed as dist

    dist.init_process_group(backend="gloo")
    print(f"sdk rank {dist.get_rank()} of {dist.get_world_size()} node {os.environ['PET_NODE_RANK']}")


job = client.train(runtime=torch, trainer=CustomTrainer(func=prints_its_rank, image=image, num_nodes=2))
done = client.wait_for_job_status(job, status={"Complete"}, timeout=120, polling_interval=2)
seen["status"] = done.status
seen["steps"] = sorted((s.name, s.status) for s in client.get_job(job).steps)
seen["logs"] = sorted(line.strip() for line in client.get_job_logs(job, step="node-1"))
seen["logs_node0"] = sorted(line.strip() for line in client.get_job_logs(job))


def fails():
    raise SystemExit(7)


# A failing node fails its TrainJob at once only when its Job has no retries left: a namespaced
# runtime like torch-distributed with `backoffLimit: 0` (the SDK prefers it over the cluster's).
from kubernetes import client as k8s, config  # noqa: E402  (the SDK's own dependency)

config.load_kube_config()
custom = k8s.CustomObjectsApi()
cluster_runtime = custom.get_cluster_custom_object(
    "trainer.kubeflow.org", "v1alpha1", "clustertrainingruntimes", "torch-distributed"
)
spec = cluster_runtime["spec"]
spec["template"]["spec"]["replicatedJobs"][0]["template"]["spec"]["backoffLimit"] = 0
custom.create_namespaced_custom_object(
    "trainer.kubeflow.org", "v1alpha1", namespace, "trainingruntimes",
    {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainingRuntime",
     "metadata": {"name": "torch-no-retries", "labels": {"trainer.kubeflow.org/framework": "torch"}}, "spec": spec},
)
no_retries = client.get_runtime("torch-no-retries")
failing = client.train(runtime=no_retries, trainer=CustomTrainer(func=fails, image=image))
try:
    client.wait_for_job_status(failing, status={"Complete"}, timeout=120, polling_interval=2)
    seen["failing"] = "no error"
except RuntimeError as e:
    seen["failing"] = str(e)
seen["failing_status"] = client.get_job(failing).status
print(json.dumps(seen))
