"""The peer of benches/pipelines.rs: how KFP's own SDK waits for a run
(`kfp.Client.wait_for_run_completion`, which polls the run every 5 s), measured as kubevet is:
from the moment the run's Workflow ended (the TEST STAND-IN's millisecond annotation) to the
moment the wait returned. Runs N runs at once, one thread each, then deletes them.

Usage: pipelines_sdk_peer.py HOST PIPELINE_FILE N   (KUBECONFIG: the test cluster)
Prints one JSON object: {"latencies_ms": [...]}.
"""

import json
import subprocess
import sys
import threading
import time
from datetime import datetime

import kfp

host, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
client = kfp.Client(host=host)
name = f"bench-sdk-{int(time.time() * 1000)}"
pipeline = client.upload_pipeline(path, pipeline_name=name)
version = client.list_pipeline_versions(pipeline.pipeline_id).pipeline_versions[0].pipeline_version_id
experiment = client.create_experiment(f"{name}-experiment")
returned = {}


def one(i):
    own = kfp.Client(host=host)
    run = own.run_pipeline(experiment.experiment_id, f"{name}-{i}", pipeline_id=pipeline.pipeline_id, version_id=version)
    own.wait_for_run_completion(run.run_id, timeout=600)
    returned[run.run_id] = time.time() * 1000


threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
for t in threads:
    t.start()
for t in threads:
    t.join()


def ended_ms(run_id):
    out = subprocess.run(
        ["kubectl", "-n", "kubeflow", "get", "workflows", "-l", f"pipeline/runid={run_id}", "-o", "json"],
        check=True, capture_output=True, text=True,
    ).stdout
    at = json.loads(out)["items"][0]["metadata"]["annotations"]["kubevet.test/finished-at"]
    return datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp() * 1000


latencies = [returned[r] - ended_ms(r) for r in returned]
for run_id in returned:
    client.delete_run(run_id)
client.delete_pipeline_version(pipeline.pipeline_id, version)
client.delete_pipeline(pipeline.pipeline_id)
print(json.dumps({"latencies_ms": latencies}))
