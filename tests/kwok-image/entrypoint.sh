#!/bin/sh
# TEST STAND-IN control plane in one container: etcd, kube-apiserver, controller-manager,
# scheduler, `kubectl proxy` serving the API as plain HTTP on 8080 (as the KWOK cluster image
# does; its "Starting to serve on [::]:8080" is the line the testcontainers KWOK module waits
# for), and bench-pod-completer playing the kubelet of node kwok-node-0 (pods turn Running,
# then Succeeded after 1 s). The proxy starts last, once the node and the default service
# account exist, so that ready means ready.
set -e
export PATH=/usr/local/bin:$PATH
mkdir -p /tmp/etcd /tmp/certs
etcd --data-dir /tmp/etcd --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
  --listen-peer-urls http://127.0.0.1:2380 >/tmp/etcd.log 2>&1 &
kube-apiserver --etcd-servers http://127.0.0.1:2379 --insecure-port 0 --token-auth-file /kwok/tokens.csv \
  --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port 6443 --cert-dir /tmp/certs \
  --service-account-key-file /kwok/sa.pub --service-account-signing-key-file /kwok/sa.key \
  --service-account-issuer https://kubernetes.default.svc --authorization-mode AlwaysAllow \
  --disable-admission-plugins ServiceAccount --endpoint-reconciler-type none \
  --service-cluster-ip-range 10.0.0.0/24 >/tmp/apiserver.log 2>&1 &
api() { wget -q -O - --no-check-certificate --header "Authorization: Bearer kwok-admin" "https://127.0.0.1:6443$1"; }
until api /healthz >/dev/null 2>&1; do sleep 0.2; done
kube-controller-manager --kubeconfig /kwok/kubeconfig --bind-address 127.0.0.1 --port 0 --leader-elect=false \
  --controllers '*,-nodeipam,-serviceaccount-token' --kube-api-qps 200 --kube-api-burst 400 >/tmp/cm.log 2>&1 &
kube-scheduler --kubeconfig /kwok/kubeconfig --bind-address 127.0.0.1 --port 0 --leader-elect=false \
  >/tmp/scheduler.log 2>&1 &
bench-pod-completer /kwok/kubeconfig kwok-node-0 1 /tmp/completed >/tmp/completer.log 2>&1 &
until api /api/v1/nodes/kwok-node-0 >/dev/null 2>&1; do sleep 0.2; done
until api /api/v1/namespaces/default/serviceaccounts/default >/dev/null 2>&1; do sleep 0.2; done
exec kubectl proxy --kubeconfig /kwok/kubeconfig --address 0.0.0.0 --port 8080 --accept-hosts '.*'
