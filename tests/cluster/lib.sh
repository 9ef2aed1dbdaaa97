# Shared settings of the test cluster scripts (up, down, status). Sourced, not run.
# Everything lives on loopback; see ../../../shared/TESTCLUSTER.md for why each piece is here.
set -euo pipefail

KV_K8S_SRC_VERSION="1.20.5+really1.20.2-1.1+deb12u1"
KV_K8S_GIT_VERSION="v1.20.2"
# Binaries and images survive `down`; they are keyed by the Debian source version.
KV_CACHE="${KUBEVET_TESTCLUSTER_CACHE:-/var/cache/kubevet-testcluster}"
KV_BIN="$KV_CACHE/$KV_K8S_SRC_VERSION/bin"
# Everything a running cluster owns; `down` deletes it.
KV_STATE="${KUBEVET_TESTCLUSTER_STATE:-/var/lib/kubevet-testcluster}"
KV_KUBECONFIG="$KV_STATE/kubeconfig"
KV_ETCD_DATA="/dev/shm/kubevet-testcluster-etcd"
# The kubelet rejects a loopback --node-ip, so the API server reaches it by its Hostname
# address; naming the node localhost makes that resolve to loopback without editing /etc/hosts.
KV_NODE_NAME="localhost"
KV_ETCD_PORT=23790
KV_API_PORT=6443
KV_KUBELET_PORT=10250
KV_RUNTIME_NAME="kubevet-runc"
KV_PAUSE_IMAGE="kubevet.test/pause:3.4"
KV_BUSYBOX_IMAGE="kubevet.test/busybox:1.35"
KV_SYSCTLS="vm.overcommit_memory kernel.panic kernel.panic_on_oops"
KV_PROCESSES="dockerd etcd kube-apiserver kube-controller-manager kube-scheduler kubelet"

log() { printf '[testcluster %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

require_root() {
  [ "$(id -u)" = 0 ] || die "must run as root (it starts dockerd, a kubelet and changes sysctls)"
}

pid_alive() { [ -f "$KV_STATE/pids/$1.pid" ] && kill -0 "$(cat "$KV_STATE/pids/$1.pid")" 2>/dev/null; }

kubectl_tc() { kubectl --kubeconfig "$KV_KUBECONFIG" "$@"; }

api_healthy() {
  [ -f "$KV_KUBECONFIG" ] || return 1
  curl -fsS --max-time 2 --cacert "$KV_STATE/pki/ca.crt" --cert "$KV_STATE/pki/admin.crt" \
    --key "$KV_STATE/pki/admin.key" "https://127.0.0.1:$KV_API_PORT/readyz" >/dev/null 2>&1
}
