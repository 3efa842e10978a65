#!/usr/bin/env bash
# The Tidemark demo: a local Kafka-protocol broker, filesystem storage under ./demo-data, a backup
# (list, describe, deep verify), a three-phase restore into a new topic with its offset mapping, the
# offset safety net end to end — snapshot, a botched offset change, verify, rollback, export —
# and offset reset: plan, execute with a safety snapshot, undo, bulk dry run, script; a restore drill
# of the backup, an offset reset planned for approval, then executed exactly as approved, and an
# encrypted backup with a key rotation.
# Everything it needs is installed on first run (cached in ~/.cache/tidemark/tools).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-test-tools.sh --kafka-only
TOOLS="${TIDEMARK_TOOLS:-$HOME/.cache/tidemark/tools}"
echo "==> building tidemark"
cargo build --quiet --locked -p tidemark -p tidemark-tests --bins
TARGET="${CARGO_TARGET_DIR:-target}/debug"
TIDEMARK="$TARGET/tidemark"
LOAD="$TARGET/tidemark-demo-load"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
BOOTSTRAP="127.0.0.1:$PORT"
STORE="$PWD/demo-data"
rm -rf "$STORE" && mkdir -p "$STORE"
"$TOOLS/bin/tansu" broker --listener-url "tcp://$BOOTSTRAP" --advertised-listener-url "tcp://$BOOTSTRAP" \
  --storage-engine memory://tansu/ >"$STORE/broker.log" 2>&1 &
BROKER=$!
trap 'kill $BROKER 2>/dev/null || true' EXIT
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && break; sleep 0.1; done

step() { printf '\n\033[1m### %s\033[0m\n$ %s\n' "$1" "${*:2}"; "${@:2}"; }
run_allow_fail() { printf '$ %s\n' "$*"; "$@" || echo "(exit code $? — expected here)"; }

echo "==> broker on $BOOTSTRAP, storage in $STORE"
"$LOAD" fill "$BOOTSTRAP" orders 3 1000
"$LOAD" fill "$BOOTSTRAP" payments 2 500
"$LOAD" commit "$BOOTSTRAP" order-processor orders:0=812 orders:1=790 orders:2=805
"$LOAD" commit "$BOOTSTRAP" payment-handler payments:0=410 payments:1=398
"$LOAD" commit "$BOOTSTRAP" analytics orders:0=1000 orders:1=1000 orders:2=1000 payments:0=500 payments:1=500

step "0. Back up the topics (zstd segments with checksums, consumer offsets captured)" \
  "$TIDEMARK" backup --bootstrap-servers "$BOOTSTRAP" --path "$STORE" --topics 'orders,payments' --backup-id first-backup
step "0b. Backups in storage, and what one holds" "$TIDEMARK" list --path "$STORE"
step "0c. Every partition's offsets, sizes and time range" \
  "$TIDEMARK" describe --path "$STORE" --backup-id first-backup
step "0d. Every record decoded and checked against its checksum" \
  "$TIDEMARK" verify-backup --path "$STORE" --backup-id first-backup --deep
cat > "$STORE/restore.yaml" <<EOF
mode: restore
backup_id: first-backup
target:
  bootstrap_servers: [$BOOTSTRAP]
  topics:
    include: [orders]
storage:
  backend: filesystem
  path: $STORE
restore:
  topic_mapping: {orders: orders-restored}
  create_topics: true
  include_original_offset_header: true
  consumer_group_strategy: header-based
  consumer_groups: [order-processor]
  # One record per batch: the demo broker reports a batch's base offset + 1 as the end offset,
  # and offsets are clamped to the end offset as Kafka's own tool does.
  produce_batch_size: 1
EOF
step "0e. Validate a restore of orders into orders-restored (changes nothing)" \
  "$TIDEMARK" validate-restore --config "$STORE/restore.yaml"
step "0f. Three-phase restore: the records exactly once, then order-processor's offsets translated" \
  "$TIDEMARK" three-phase-restore --config "$STORE/restore.yaml"
step "0g. Where every source offset went" \
  "$TIDEMARK" show-offset-mapping --path "$STORE" --backup-id first-backup
step "1. Safety snapshot before a risky change" \
  "$TIDEMARK" offset-rollback snapshot --path "$STORE" --groups order-processor,payment-handler,analytics \
  --bootstrap-servers "$BOOTSTRAP" --description "Before the 14:00 deploy" --snapshot-id before-deploy
step "2. Snapshots in storage" "$TIDEMARK" offset-rollback list --path "$STORE"
step "3. What the snapshot holds" "$TIDEMARK" offset-rollback show --path "$STORE" --snapshot-id before-deploy

printf '\n\033[1m### 4. A botched offset reset rewinds two groups\033[0m\n'
"$LOAD" commit "$BOOTSTRAP" order-processor orders:0=0 orders:1=0 orders:2=0
"$LOAD" commit "$BOOTSTRAP" payment-handler payments:1=0

printf '\n\033[1m### 5. Verify finds every moved partition\033[0m\n'
run_allow_fail "$TIDEMARK" offset-rollback verify --path "$STORE" --snapshot-id before-deploy --bootstrap-servers "$BOOTSTRAP"

step "6. Roll back to the snapshot (verified afterwards)" \
  "$TIDEMARK" offset-rollback rollback --path "$STORE" --snapshot-id before-deploy --bootstrap-servers "$BOOTSTRAP" --verify
step "7. Verify again" \
  "$TIDEMARK" offset-rollback verify --path "$STORE" --snapshot-id before-deploy --bootstrap-servers "$BOOTSTRAP" --strict
step "8. Export all offsets as kmap JSON with a kafka-consumer-groups restore script" \
  "$TIDEMARK" offsets export --bootstrap-servers "$BOOTSTRAP" --output "$STORE/consumer-offsets.json" \
  --restore-script "$STORE/restore-offsets.sh"
step "9. The same rollback result as JSON, for automation" \
  "$TIDEMARK" offset-rollback rollback --path "$STORE" --snapshot-id before-deploy --bootstrap-servers "$BOOTSTRAP" --format json

step "10. Offset reset, planned first: replay the last 100 records of every orders partition" \
  "$TIDEMARK" offset-reset plan --bootstrap-servers "$BOOTSTRAP" --groups order-processor --topic orders --shift-by -100
step "11. Executed: a safety snapshot of exactly these offsets is stored first" \
  "$TIDEMARK" offset-reset execute --bootstrap-servers "$BOOTSTRAP" --groups order-processor --topic orders \
  --shift-by -100 --path "$STORE" --snapshot-id before-replay
step "12. Changed our minds: the safety snapshot puts the group back exactly" \
  "$TIDEMARK" offset-rollback rollback --path "$STORE" --snapshot-id before-replay --bootstrap-servers "$BOOTSTRAP"
step "13. Bulk reset of every group to one minute ago, as a dry run (without --dry-run it applies)" \
  "$TIDEMARK" offset-reset-bulk --bootstrap-servers "$BOOTSTRAP" --all-groups --all-topics --by-duration PT1M --dry-run
step "14. A reviewed-before-run kafka-consumer-groups script for the same reset" \
  "$TIDEMARK" offset-reset script --bootstrap-servers "$BOOTSTRAP" --all-groups --all-topics --by-duration PT1M \
  --output "$STORE/reset-offsets.sh"

cat > "$STORE/drill.yaml" <<EOF
backup_id: first-backup
target:
  bootstrap_servers: [$BOOTSTRAP]
storage:
  backend: filesystem
  path: $STORE
drill:
  drill_id: demo
EOF
step "15. Restore drill: the backup restored into drill-demo-* scratch topics, every record read back and compared, the captured offsets checked in scratch groups, everything scratch deleted" \
  "$TIDEMARK" drill --config "$STORE/drill.yaml"
rm -f "$STORE/replay.plan.json"
step "16. A reset planned for approval: the plan file and its hash, nothing changed yet" \
  "$TIDEMARK" offset-reset execute --bootstrap-servers "$BOOTSTRAP" --groups order-processor --topic orders \
  --shift-by -10 --path "$STORE" --plan-out "$STORE/replay.plan.json"
step "17. Executed exactly as planned (refused, with nothing changed, if the group moved since)" \
  "$TIDEMARK" offset-reset execute --bootstrap-servers "$BOOTSTRAP" --path "$STORE" \
  --approved-plan "$STORE/replay.plan.json"
mkdir -p "$STORE/keys" && head -c 32 /dev/urandom >"$STORE/keys/demo-1"
step "18. An encrypted backup: records and offsets sealed with AES-256-GCM under a data key that key demo-1 wraps" \
  "$TIDEMARK" backup --bootstrap-servers "$BOOTSTRAP" --path "$STORE/sealed" --topics orders --backup-id sealed-backup \
  --encryption-key-file "$STORE/keys"
step "19. Every segment authenticated and decoded with the key" \
  "$TIDEMARK" verify-backup --path "$STORE/sealed" --backup-id sealed-backup --deep --encryption-key-file "$STORE/keys"
head -c 32 /dev/urandom >"$STORE/keys/demo-2"
step "20. Key rotation: the backup's data key re-wrapped under demo-2, its segments untouched" \
  "$TIDEMARK" rewrap-keys --path "$STORE/sealed" --all --encryption-key-file "$STORE/keys" --encryption-key-id demo-2

printf '\n\033[1mDemo complete.\033[0m Snapshots and exports are in %s\n' "$STORE"
