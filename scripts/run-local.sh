#!/usr/bin/env bash
# Runs the pipeline locally: the Firebase Auth emulator and `signupsync dev`.
# Called by `make run`; Ctrl-C stops both.
set -euo pipefail
bin=$1 firebase=$2 http_addr=$3 nats_addr=$4 emu_port=$5 project=$6 secret=$7
# The admin listener of `signupsync dev` (--metrics-addr).
admin_addr=${SIGNUPSYNC_METRICS_ADDR:-127.0.0.1:9464}

work=$(mktemp -d)
cat >"$work/firebase.json" <<JSON
{"emulators":{"auth":{"host":"127.0.0.1","port":$emu_port},"ui":{"enabled":false}}}
JSON
emu_pid=""
cleanup() {
  trap - EXIT INT TERM
  [ -n "$emu_pid" ] && kill -INT -- "-$emu_pid" 2>/dev/null && wait "$emu_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

echo "starting the Firebase Auth emulator on 127.0.0.1:$emu_port (log: $work/emulator.log)"
( cd "$work" && CI=1 exec setsid "$OLDPWD/$firebase" emulators:start --only auth --project "$project" --config "$work/firebase.json" >"$work/emulator.log" 2>&1 ) &
emu_pid=$!
for _ in $(seq 1 600); do
  curl -fsS "http://127.0.0.1:$emu_port/" >/dev/null 2>&1 && break
  kill -0 "$emu_pid" 2>/dev/null || { cat "$work/emulator.log"; exit 1; }
  sleep 0.2
done

cat <<MSG

signupsync is starting: webhooks on http://$http_addr, NATS on nats://$nats_addr,
Firebase Auth emulator on 127.0.0.1:$emu_port (project $project),
/metrics, /healthz and /readyz on http://$admin_addr (not on the webhook port).

Post a signed sample signup (in another terminal):

  $bin sample --url http://$http_addr --action-secrets $secret

then look it up:

  SIGNUPSYNC_NATS_URL=nats://$nats_addr $bin status <the printed user_id>
  curl -s -H 'Authorization: Bearer owner' -H 'Content-Type: application/json' \\
    -d '{"localId":["<the printed user_id>"]}' \\
    http://127.0.0.1:$emu_port/identitytoolkit.googleapis.com/v1/projects/$project/accounts:lookup

MSG

FIREBASE_AUTH_EMULATOR_HOST=127.0.0.1:$emu_port \
SIGNUPSYNC_FIREBASE_PROJECT=$project \
SIGNUPSYNC_HTTP_ADDR=$http_addr \
SIGNUPSYNC_METRICS_ADDR=$admin_addr \
SIGNUPSYNC_DEV_NATS_ADDR=$nats_addr \
SIGNUPSYNC_ACTION_SECRETS=$secret \
  "$bin" dev &
dev_pid=$!
trap 'kill -TERM "$dev_pid" 2>/dev/null || true' INT TERM
wait "$dev_pid" || true
