"""Drives the TEST STAND-IN KFP API server with the official `kfp` SDK from PyPI, as a KFP
user would: upload pipelines and versions, create an experiment, run with parameters, wait
with `wait_for_run_completion`, read runs and versions back, and hit the error rules. Prints
one JSON object of what it saw; tests/standin_kfp.rs asserts on it.

Usage: sdk_check.py HOST PIPELINES_DIR
"""

import json
import sys
import time

import kfp
from kfp_server_api.exceptions import ApiException

host, folder = sys.argv[1], sys.argv[2]
client = kfp.Client(host=host)
seen = {"sdk": kfp.__version__}
suffix = str(int(time.time() * 1000))


def status_of(call):
    try:
        call()
    except ApiException as e:
        return {"status": e.status, "body": json.loads(e.body) if e.body else None}
    return {"status": 200}


def version_of(pipeline):
    """The version an upload made (the SDK runs a pipeline by pipeline and version id)."""
    return client.list_pipeline_versions(pipeline.pipeline_id).pipeline_versions[0].pipeline_version_id


seen["healthz"] = client.get_kfp_healthz().to_dict()
with_after = client.upload_pipeline(f"{folder}/pipeline-with-after.yaml", pipeline_name=f"sdk-after-{suffix}")
seen["pipeline_id"] = with_after.pipeline_id
seen["duplicate_upload"] = status_of(
    lambda: client.upload_pipeline(f"{folder}/pipeline-with-after.yaml", pipeline_name=f"sdk-after-{suffix}")
)
version = client.upload_pipeline_version(
    f"{folder}/pipeline-with-after.yaml", pipeline_version_name="v2", pipeline_id=with_after.pipeline_id
)
versions = client.list_pipeline_versions(with_after.pipeline_id, sort_by="created_at desc")
seen["versions"] = sorted(v.display_name for v in versions.pipeline_versions)
experiment = client.create_experiment(f"sdk-{suffix}")
# The SDK finds an experiment by name before creating one: the filter must work.
seen["experiment_again"] = client.create_experiment(f"sdk-{suffix}").experiment_id == experiment.experiment_id

run = client.run_pipeline(
    experiment.experiment_id, "with-after", pipeline_id=with_after.pipeline_id, version_id=version.pipeline_version_id
)
started = time.time()
done = client.wait_for_run_completion(run.run_id, timeout=120)
seen["with_after"] = {
    "state": done.state,
    "seconds": round(time.time() - started, 1),
    "tasks": sorted(t.display_name for t in done.run_details.task_details),
}


def skipped(run_id):
    """The tasks of a finished run that KFP's cache answered (state SKIPPED)."""
    details = client.wait_for_run_completion(run_id, timeout=120).run_details.task_details
    return sorted(t.display_name for t in details if t.state == "SKIPPED")


# Caching on, as the SDK compiles every task: the same tasks again are answered from the cache
# while the first run exists; the SDK's own switch turns it off for a run.
again = client.run_pipeline(
    experiment.experiment_id, "with-after-again", pipeline_id=with_after.pipeline_id, version_id=version.pipeline_version_id
)
seen["cached_again"] = skipped(again.run_id)
off = client.run_pipeline(
    experiment.experiment_id, "cache-off", pipeline_package_path=f"{folder}/pipeline-with-after.yaml", enable_caching=False
)
seen["cache_off"] = skipped(off.run_id)

producer = client.upload_pipeline(f"{folder}/producer-consumer-param-pipeline.yaml", pipeline_name=f"sdk-pc-{suffix}")
run = client.run_pipeline(
    experiment.experiment_id, "producer-consumer", pipeline_id=producer.pipeline_id, version_id=version_of(producer), params={"text": "From the SDK"}
)
seen["producer_consumer"] = client.wait_for_run_completion(run.run_id, timeout=120).state
seen["producer_consumer_run_id"] = run.run_id

typed = client.upload_pipeline(f"{folder}/typed-parameters.yaml", pipeline_name=f"sdk-typed-{suffix}")
seen["undeclared_parameter"] = status_of(
    lambda: client.run_pipeline(experiment.experiment_id, "x", pipeline_id=typed.pipeline_id, version_id=version_of(typed), params={"nope": 1})
)
seen["string_for_integer"] = status_of(
    lambda: client.run_pipeline(experiment.experiment_id, "x", pipeline_id=typed.pipeline_id, version_id=version_of(typed), params={"epochs": "3"})
)
seen["missing_required"] = status_of(
    lambda: client.run_pipeline(experiment.experiment_id, "x", pipeline_id=typed.pipeline_id, version_id=version_of(typed), params={})
)
run = client.run_pipeline(experiment.experiment_id, "typed", pipeline_id=typed.pipeline_id, version_id=version_of(typed), params={"epochs": 3})
seen["typed"] = client.wait_for_run_completion(run.run_id, timeout=120).state

failing = client.upload_pipeline(f"{folder}/failing-task.yaml", pipeline_name=f"sdk-failing-{suffix}")
run = client.run_pipeline(experiment.experiment_id, "failing", pipeline_id=failing.pipeline_id, version_id=version_of(failing))
done = client.wait_for_run_completion(run.run_id, timeout=120)
seen["failing"] = {
    "state": done.state,
    "failed_tasks": sorted(
        t.display_name for t in done.run_details.task_details if t.state == "FAILED" and t.display_name != "executor"
    ),
}

slow = client.upload_pipeline(f"{folder}/slow-task.yaml", pipeline_name=f"sdk-slow-{suffix}")
run = client.run_pipeline(experiment.experiment_id, "slow", pipeline_id=slow.pipeline_id, version_id=version_of(slow))
time.sleep(2)
client.terminate_run(run.run_id)
seen["terminated"] = client.wait_for_run_completion(run.run_id, timeout=60).state
seen["terminate_again"] = status_of(lambda: client.terminate_run(run.run_id))
client.delete_run(run.run_id)
seen["deleted_run"] = status_of(lambda: client.get_run(run.run_id))
seen["delete_with_versions"] = status_of(lambda: client.delete_pipeline(slow.pipeline_id))
print(json.dumps(seen))
