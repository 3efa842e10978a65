#!/usr/bin/env bash
# End-to-end suite on a kind cluster: builds the image, installs the CRDs and the operator (Helm
# chart, or config/default), starts a real Kafka and MinIO, produces data, then drives
# KafkaBackup -> KafkaRestore -> KafkaOffsetReset -> KafkaOffsetRollback through the custom
# resources and asserts on their status, on Kafka itself, on Events and on the operator's
# metrics. Deletes the cluster at the end (TIDEMARK_E2E_KEEP=1 keeps it).
#
# Needs: docker (running), kind, kubectl; helm (optional: without it, kubectl apply -k
# config/default). See e2e/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER="${TIDEMARK_E2E_CLUSTER:-tidemark-e2e}"
IMAGE_REPOSITORY="${TIDEMARK_E2E_IMAGE_REPOSITORY:-tidemark}"
IMAGE_TAG="${TIDEMARK_E2E_IMAGE_TAG:-e2e}"
IMAGE="${IMAGE_REPOSITORY}:${IMAGE_TAG}"
TIMEOUT="${TIDEMARK_E2E_TIMEOUT:-600}"
KEEP="${TIDEMARK_E2E_KEEP:-0}"
SKIP_BUILD="${TIDEMARK_E2E_SKIP_BUILD:-0}"
NS=tidemark-e2e
SYSTEM_NS=tidemark-system
BOOTSTRAP=kafka.tidemark-e2e.svc.cluster.local:9092
KAFKA_BIN=/opt/kafka/bin
MANIFESTS=e2e/manifests
RECORDS=3000
CONSUMED=1000
GROUP=e2e-orders

log() { printf '\n==> %s\n' "$*" >&2; }
fail() {
  printf '\nFAILED: %s\n' "$*" >&2
  exit 1
}

need() {
  command -v "$1" >/dev/null 2>&1 || fail "$1 is required (see e2e/README.md)"
}

# What a failed run leaves to look at, before the cluster goes.
diagnostics() {
  log "diagnostics"
  kubectl get kafkabackups,kafkarestores,kafkaoffsetresets,kafkaoffsetrollbacks -n "$NS" -o yaml || true
  kubectl get jobs,pods -n "$NS" -o wide || true
  kubectl get events -n "$NS" --sort-by=.lastTimestamp || true
  kubectl logs -n "$NS" -l app.kubernetes.io/managed-by=tidemark-operator --tail=200 --prefix || true
  kubectl logs -n "$SYSTEM_NS" -l app.kubernetes.io/component=operator --tail=300 || true
}

cleanup() {
  local status=$?
  if [ "$status" -ne 0 ]; then
    diagnostics
  fi
  if [ "$KEEP" = 1 ]; then
    log "keeping the kind cluster $CLUSTER (kind delete cluster --name $CLUSTER)"
  else
    log "deleting the kind cluster $CLUSTER"
    kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
  fi
  exit "$status"
}

# Runs a Kafka command-line tool in the broker's pod.
kafka() {
  local tool=$1
  shift
  kubectl exec -n "$NS" kafka-0 -- "$KAFKA_BIN/$tool" --bootstrap-server "$BOOTSTRAP" "$@"
}

# The committed offsets of $GROUP on `orders`, as `partition:offset` lines, sorted.
group_offsets() {
  kafka kafka-consumer-groups.sh --describe --group "$GROUP" 2>/dev/null |
    awk '$2 == "orders" { print $3 ":" $4 }' | sort -n
}

# The sum of the end offsets of a topic.
topic_records() {
  kafka kafka-get-offsets.sh --topic "$1" --time -1 |
    awk -F: '{ sum += $3 } END { print sum + 0 }'
}

# Waits until the `kind` resource `name` reaches phase `phase` (kubectl wait), failing at once
# when it fails or stalls instead.
wait_phase() {
  local kind=$1 name=$2 phase=$3
  local deadline=$((SECONDS + TIMEOUT))
  log "waiting for $kind/$name to be $phase"
  until kubectl wait -n "$NS" "$kind/$name" --for=jsonpath='{.status.phase}'="$phase" --timeout=10s >/dev/null 2>&1; do
    local current stalled
    current=$(kubectl get -n "$NS" "$kind/$name" -o jsonpath='{.status.phase}' 2>/dev/null || true)
    stalled=$(kubectl get -n "$NS" "$kind/$name" -o jsonpath='{.status.conditions[?(@.type=="Stalled")].status}' 2>/dev/null || true)
    if [ "$current" = Failed ] || [ "$stalled" = True ]; then
      kubectl get -n "$NS" "$kind/$name" -o jsonpath='{.status.conditions[?(@.type=="Ready")].message}{"\n"}' >&2 || true
      fail "$kind/$name is ${current:-without a phase} (Stalled=$stalled)"
    fi
    [ "$SECONDS" -lt "$deadline" ] || fail "$kind/$name did not reach $phase in ${TIMEOUT}s (phase ${current:-none})"
  done
  # The outcome the GitOps tools read: Ready, neither Reconciling nor Stalled, the generation
  # observed.
  kubectl wait -n "$NS" "$kind/$name" --for=condition=Ready --timeout=30s >/dev/null
  kubectl wait -n "$NS" "$kind/$name" --for=condition=Reconciling=False --timeout=30s >/dev/null
  kubectl wait -n "$NS" "$kind/$name" --for=condition=Stalled=False --timeout=30s >/dev/null
  local generation
  generation=$(kubectl get -n "$NS" "$kind/$name" -o jsonpath='{.metadata.generation}')
  kubectl wait -n "$NS" "$kind/$name" --for=jsonpath='{.status.observedGeneration}'="$generation" --timeout=30s >/dev/null
  kubectl get -n "$NS" "$kind/$name" -o jsonpath='{.status.conditions[?(@.type=="Ready")].message}{"\n"}' >&2
}

# Asserts that `jsonpath` of the `kind` resource `name` is `value`.
expect_status() {
  local kind=$1 name=$2 jsonpath=$3 value=$4
  kubectl wait -n "$NS" "$kind/$name" --for=jsonpath="$jsonpath"="$value" --timeout=30s >/dev/null ||
    fail "$kind/$name: $jsonpath is '$(kubectl get -n "$NS" "$kind/$name" -o jsonpath="$jsonpath")', expected '$value'"
}

# Asserts that a Normal Event with `reason` was recorded about the `kind` resource `name`.
expect_event() {
  local kind=$1 name=$2 reason=$3
  local found
  found=$(kubectl get events -n "$NS" \
    --field-selector "involvedObject.kind=$kind,involvedObject.name=$name,reason=$reason" \
    -o name 2>/dev/null | wc -l)
  [ "$found" -ge 1 ] || fail "no $reason Event about $kind/$name"
}

need docker
need kind
need kubectl
docker info >/dev/null 2>&1 || fail "the Docker daemon is not reachable"

trap cleanup EXIT

log "creating the kind cluster $CLUSTER"
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  log "reusing the existing cluster $CLUSTER"
else
  kind create cluster --name "$CLUSTER" --config e2e/kind-config.yaml --wait 180s
fi
kubectl config use-context "kind-$CLUSTER" >/dev/null

if [ "$SKIP_BUILD" != 1 ]; then
  log "building $IMAGE"
  docker build -t "$IMAGE" \
    --build-arg VERSION="$(awk -F'"' '/^version =/ { print $2; exit }' Cargo.toml)" \
    --build-arg REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)" .
fi
log "loading $IMAGE into $CLUSTER"
kind load docker-image "$IMAGE" --name "$CLUSTER"

log "installing the CRDs and the operator"
if command -v helm >/dev/null 2>&1 && [ -f charts/tidemark/Chart.yaml ]; then
  helm upgrade --install tidemark ./charts/tidemark \
    --namespace "$SYSTEM_NS" --create-namespace \
    --set image.repository="$IMAGE_REPOSITORY" \
    --set image.tag="$IMAGE_TAG" \
    --set image.pullPolicy=IfNotPresent \
    --wait --timeout 5m
else
  log "helm not found: kubectl apply -k config/default"
  kubectl apply -k config/default
  kubectl -n "$SYSTEM_NS" set image deployment/tidemark-operator operator="$IMAGE"
  kubectl -n "$SYSTEM_NS" set env deployment/tidemark-operator \
    TIDEMARK_WORKER_IMAGE="$IMAGE" TIDEMARK_WORKER_IMAGE_PULL_POLICY=IfNotPresent
fi
for crd in kafkabackups kafkarestores kafkaoffsetresets kafkaoffsetrollbacks; do
  kubectl wait --for=condition=Established "crd/$crd.tidemark.dev" --timeout=60s
done
kubectl wait -n "$SYSTEM_NS" deployment -l app.kubernetes.io/component=operator \
  --for=condition=Available --timeout=300s

log "starting Kafka and MinIO in $NS"
kubectl apply -f "$MANIFESTS/kafka.yaml"
# Random credentials, never printed: MinIO's root user, and the same keys for the workers.
minio_user="e2e-$(od -An -N4 -tx4 /dev/urandom | tr -d ' \n')"
minio_password="$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
kubectl create secret generic minio-root -n "$NS" \
  --from-literal=MINIO_ROOT_USER="$minio_user" \
  --from-literal=MINIO_ROOT_PASSWORD="$minio_password" \
  --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl create secret generic s3-credentials -n "$NS" \
  --from-literal=AWS_ACCESS_KEY_ID="$minio_user" \
  --from-literal=AWS_SECRET_ACCESS_KEY="$minio_password" \
  --dry-run=client -o yaml | kubectl apply -f - >/dev/null
unset minio_user minio_password
kubectl apply -f "$MANIFESTS/minio.yaml"
kubectl rollout status -n "$NS" statefulset/kafka --timeout=300s
kubectl rollout status -n "$NS" deployment/minio --timeout=300s
kubectl wait -n "$NS" job/minio-bucket --for=condition=Complete --timeout=300s

log "producing $RECORDS records to orders; $GROUP reads $CONSUMED of them"
kafka kafka-topics.sh --create --if-not-exists --topic orders --partitions 3 --replication-factor 1
# shellcheck disable=SC2016 # expanded by the pod's shell
kubectl exec -n "$NS" kafka-0 -- sh -c '
  i=1
  while [ "$i" -le "$1" ]; do echo "order-$i:{\"order\":$i}"; i=$((i + 1)); done |
    "$2/kafka-console-producer.sh" --bootstrap-server "$3" --topic orders \
      --property parse.key=true --property key.separator=:
' sh "$RECORDS" "$KAFKA_BIN" "$BOOTSTRAP"
[ "$(topic_records orders)" = "$RECORDS" ] || fail "orders holds $(topic_records orders) records, expected $RECORDS"
# One record per poll, so that the offsets committed on exit are the records read.
kafka kafka-console-consumer.sh --topic orders --group "$GROUP" --from-beginning \
  --max-messages "$CONSUMED" --timeout-ms 60000 --consumer-property max.poll.records=1 >/dev/null
before=$(group_offsets)
committed=$(printf '%s\n' "$before" | awk -F: '{ sum += $2 } END { print sum + 0 }')
if [ "$committed" -le 0 ] || [ "$committed" -ge "$RECORDS" ]; then
  fail "$GROUP committed $committed offsets, expected about $CONSUMED"
fi
printf '%s offsets before: %s\n' "$GROUP" "$(printf '%s' "$before" | tr '\n' ' ')" >&2

log "1/4 KafkaBackup"
kubectl apply -f "$MANIFESTS/kafkabackup.yaml"
wait_phase kafkabackup e2e-orders Completed
expect_status kafkabackup e2e-orders '{.status.records}' "$RECORDS"
expect_status kafkabackup e2e-orders '{.status.partitions}' 3
expect_status kafkabackup e2e-orders '{.status.lastRun.phase}' Completed
expect_event KafkaBackup e2e-orders JobCreated
expect_event KafkaBackup e2e-orders JobSucceeded

log "2/4 KafkaRestore into orders-restored"
kubectl apply -f "$MANIFESTS/kafkarestore.yaml"
wait_phase kafkarestore e2e-orders-restore Completed
expect_status kafkarestore e2e-orders-restore '{.status.progress.recordsRestored}' "$RECORDS"
expect_status kafkarestore e2e-orders-restore '{.status.kafkaBackup}' e2e-orders
[ "$(topic_records orders-restored)" = "$RECORDS" ] ||
  fail "orders-restored holds $(topic_records orders-restored) records, expected $RECORDS"
expect_event KafkaRestore e2e-orders-restore JobSucceeded

log "3/4 KafkaOffsetReset of $GROUP to the earliest offsets"
kubectl apply -f "$MANIFESTS/kafkaoffsetreset.yaml"
wait_phase kafkaoffsetreset e2e-orders-rewind Completed
expect_status kafkaoffsetreset e2e-orders-rewind '{.status.groupsReset}' 1
rewound=$(group_offsets | awk -F: '{ sum += $2 } END { print sum + 0 }')
[ "$rewound" = 0 ] || fail "$GROUP is at $rewound after the reset to earliest, expected 0"
snapshot_id=$(kubectl get -n "$NS" kafkaoffsetreset/e2e-orders-rewind -o jsonpath='{.status.snapshotId}')
[ -n "$snapshot_id" ] || fail "the reset reported no safety snapshot"
expect_event KafkaOffsetReset e2e-orders-rewind JobSucceeded

log "4/4 KafkaOffsetRollback to snapshot $snapshot_id"
sed "s/snapshotId: set-by-run-sh/snapshotId: $snapshot_id/" "$MANIFESTS/kafkaoffsetrollback.yaml" |
  kubectl apply -f -
wait_phase kafkaoffsetrollback e2e-orders-undo-rewind Completed
expect_status kafkaoffsetrollback e2e-orders-undo-rewind '{.status.groupsRolledBack}' 1
after=$(group_offsets)
[ "$after" = "$before" ] || fail "$GROUP is at '$after' after the rollback, expected '$before'"
expect_event KafkaOffsetRollback e2e-orders-undo-rewind JobSucceeded

log "operator metrics"
operator_pod=$(kubectl get pods -n "$SYSTEM_NS" -l app.kubernetes.io/component=operator \
  -o jsonpath='{.items[0].metadata.name}')
metrics=$(kubectl get --raw "/api/v1/namespaces/$SYSTEM_NS/pods/$operator_pod:8080/proxy/metrics")
for kind in KafkaBackup KafkaRestore KafkaOffsetReset KafkaOffsetRollback; do
  printf '%s\n' "$metrics" | grep -q "^tidemark_worker_jobs_total{kind=\"$kind\",outcome=\"succeeded\"} [1-9]" ||
    fail "tidemark_worker_jobs_total{kind=\"$kind\",outcome=\"succeeded\"} is not counted"
done

log "deleting the custom resources"
kubectl delete -n "$NS" kafkaoffsetrollback/e2e-orders-undo-rewind kafkaoffsetreset/e2e-orders-rewind \
  kafkarestore/e2e-orders-restore kafkabackup/e2e-orders --wait=true --timeout=120s

log "end-to-end suite passed"
