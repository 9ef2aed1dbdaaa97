#!/bin/sh
# Keeps what the namespace holds in the case's artifacts: used by catch steps.
set -eu
kubectl --namespace "$KUBEVET_NAMESPACE" get configmaps,jobs,pods -o wide > "$KUBEVET_ARTIFACTS/namespace-at-failure.txt"
echo "recorded $(wc -l < "$KUBEVET_ARTIFACTS/namespace-at-failure.txt") lines of $KUBEVET_NAMESPACE"
