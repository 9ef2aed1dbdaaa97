#!/usr/bin/env bash
# The steps of kubevet's GitHub Action (action.yml): install, plan, run, merge. Its inputs come
# as KUBEVET_ACTION_* environment variables (never pasted into a script), and each is passed
# to kubevet as one argument. Run by kubevet's tests with a fake $GITHUB_OUTPUT.
set -euo pipefail

mode=${1:?usage: kubevet-action.sh install|plan|run|merge}
suite=${KUBEVET_ACTION_SUITE:-kubevet.yaml}
name=${KUBEVET_ACTION_ARTIFACTS_NAME:-kubevet}
attempt=${GITHUB_RUN_ATTEMPT:-1}

fail() {
  echo "::error title=kubevet action::$*"
  exit 2
}

# An artifact's name part: what upload-artifact takes and nothing that could end an output.
check_name() {
  [[ $1 =~ ^[A-Za-z0-9._-]+$ ]] || fail "$2 must be letters, digits, '.', '_' or '-', not: $1"
}

set_output() {
  # A single-line value checked by check_name: no delimiter is needed.
  echo "$1=$2" >>"${GITHUB_OUTPUT:?GITHUB_OUTPUT is not set}"
}

case $mode in
install)
  root=${RUNNER_TEMP:-/tmp}/kubevet-bin
  cargo install --locked --quiet --path "${KUBEVET_ACTION_PATH:?}" --root "$root"
  echo "$root/bin" >>"${GITHUB_PATH:?GITHUB_PATH is not set}"
  ;;
plan)
  plan=${KUBEVET_ACTION_PLAN:?}
  mkdir -p "$(dirname "$plan")"
  args=(plan --suite "$suite" --output "$plan")
  [[ -n ${KUBEVET_ACTION_K8S_VERSION:-} ]] && args+=(--k8s-version "$KUBEVET_ACTION_K8S_VERSION")
  [[ -n ${KUBEVET_ACTION_TIER:-} ]] && args+=(--tier "$KUBEVET_ACTION_TIER")
  [[ -n ${KUBEVET_ACTION_CHANGED_SINCE:-} ]] && args+=(--changed-since "$KUBEVET_ACTION_CHANGED_SINCE")
  [[ -n ${KUBEVET_ACTION_MAX_SHARDS:-} ]] && args+=(--max-shards "$KUBEVET_ACTION_MAX_SHARDS")
  [[ -n ${KUBEVET_ACTION_TARGET_MINUTES:-} ]] && args+=(--target-minutes "$KUBEVET_ACTION_TARGET_MINUTES")
  # kubevet writes the matrix, shards and plan outputs itself (random heredoc delimiters).
  kubevet "${args[@]}"
  ;;
run)
  check_name "$name" artifacts-name
  artifacts=${KUBEVET_ACTION_ARTIFACTS:?}
  args=(run --suite "$suite" --artifacts "$artifacts")
  if [[ -n ${KUBEVET_ACTION_SHARD:-} ]]; then
    [[ -n ${KUBEVET_ACTION_PLAN:-} ]] || fail "shard needs plan"
    check_name "$KUBEVET_ACTION_SHARD" shard
    args+=(--plan "$KUBEVET_ACTION_PLAN" --shard "$KUBEVET_ACTION_SHARD")
    cell=$KUBEVET_ACTION_SHARD
  else
    [[ -n ${KUBEVET_ACTION_PLAN:-} ]] && fail "plan needs shard (matrix.shard of the plan job's matrix)"
    if [[ -n ${KUBEVET_ACTION_K8S_VERSION:-} ]]; then
      check_name "$KUBEVET_ACTION_K8S_VERSION" kubernetes-version
      args+=(--k8s-version "$KUBEVET_ACTION_K8S_VERSION")
    fi
    [[ -n ${KUBEVET_ACTION_TIER:-} ]] && args+=(--tier "$KUBEVET_ACTION_TIER")
    [[ -n ${KUBEVET_ACTION_CHANGED_SINCE:-} ]] && args+=(--changed-since "$KUBEVET_ACTION_CHANGED_SINCE")
    cell=${KUBEVET_ACTION_K8S_VERSION:-all}
  fi
  # Named before the run, so that the artifacts of a run that fails are uploaded too.
  set_output artifact-name "$name-run-$cell-attempt-$attempt"
  kubevet "${args[@]}"
  ;;
merge)
  check_name "$name" artifacts-name
  shards=${KUBEVET_ACTION_SHARDS:?}
  plan="$shards/$name-plan/kubevet-plan.json"
  [[ -f $plan ]] || fail "no plan artifact $name-plan: run the plan mode first, with the same artifacts-name"
  dirs=()
  for dir in "$shards/$name"-run-*; do
    [[ -d $dir ]] && dirs+=("$dir")
  done
  # No shard at all is still a report: every case "not run".
  [[ ${#dirs[@]} -gt 0 ]] || dirs=("$shards/$name-plan")
  merged=${KUBEVET_ACTION_MERGED:?}
  mkdir -p "$merged"
  kubevet merge --suite "$suite" --plan "$plan" --output "$merged" --html "$merged/report.html" "${dirs[@]}"
  ;;
*)
  fail "unknown mode $mode: write plan, run or merge"
  ;;
esac
