#!/usr/bin/env bash
# Runs the integration guide's own Python and Node.js clients, unedited, against the whole
# stack started locally (`loomipay dev`: API, webhook, processor, Lakala sandbox) on the local
# PostgreSQL and Redis, in a database of its own that is dropped at the end.
#
# The guide's clients read the plain stream names, so STREAM_PREFIX stays empty and each client
# tells its messages apart by a merchant_order_id unique to the run.
#
# Needs: go, curl, psql, Debian's /usr/bin/python3 with python3-requests and python3-redis,
# node and npm. Environment: GUIDE_DATABASE_ADMIN_URL (default: the local postgres role),
# REDIS_URL (default redis://127.0.0.1:6379/0), GO. Finishes within 3 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

deadline=$((SECONDS + 175))
# budget N: N seconds, or what is left of the run's 3 minutes if that is less.
budget() {
  local left=$((deadline - SECONDS))
  ((left > 0)) || { echo "guide clients: out of time" >&2; exit 1; }
  echo $((left < $1 ? left : $1))
}
log() { printf '[guide-clients] %s\n' "$*"; }

guide=../shared/seed/loomi-pay-integration-guide.md
if [[ -f $guide ]]; then
  /usr/bin/python3 clients/check_verbatim.py "$guide"
elif [[ ${CI:-} == true ]]; then
  log "no $guide beside the checkout: CI must check that the clients are verbatim"
  exit 1
else
  log "no $guide beside the checkout: not re-checking that the clients are verbatim"
  # make test lists it at its end (LOOMIPAY_SKIP_LOG: see the Makefile's test target).
  if [[ -n ${LOOMIPAY_SKIP_LOG:-} ]]; then
    printf '%s\t%s\n' "the integration guide is not beside the checkout: the clients' verbatim check did not run (enable: put it at $guide)" \
      "clients/check_verbatim.py" >>"$LOOMIPAY_SKIP_LOG"
  fi
fi

admin_url=${GUIDE_DATABASE_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
redis_url=${REDIS_URL:-redis://127.0.0.1:6379/0}
database=loomipay_guide_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
server_url=${admin_url%%\?*}
server_url=${server_url%/*}
database_url=$server_url/$database?sslmode=disable
app_id=guide_app
work=$(mktemp -d)
dev_pid=

cleanup() {
  local status=$?
  if [[ -n $dev_pid ]]; then
    kill -TERM "$dev_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$dev_pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$dev_pid" 2>/dev/null || true
    wait "$dev_pid" 2>/dev/null || true
  fi
  timeout 15 psql "$admin_url" -qc "drop database if exists $database with (force)" >/dev/null 2>&1 \
    || log "could not drop database $database"
  # dev made a Redis user for the app's own result streams (named after this run's database); the
  # guide's clients read the shared ones.
  local user
  user=$(sed -n 's/^  Redis user  *\([^ ]*\).*/\1/p' "$work/dev.out" 2>/dev/null | head -n 1)
  if [[ -n $user ]]; then
    timeout 5 redis-cli -u "$redis_url" ACL DELUSER "$user" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT

log "building loomipay"
timeout "$(budget 120)" "${GO:-go}" build -o "$work/loomipay" ./cmd/loomipay

# Two free ports: the kernel picks them; the tiny window before loomipay binds them is harmless here.
read -r api_port sandbox_port < <(/usr/bin/python3 -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
api_url=http://127.0.0.1:$api_port

log "starting loomipay dev on $api_url (sandbox on port $sandbox_port, database $database)"
# stdout carries the demo app's key: it stays in $work, never on the console.
DATABASE_URL=$database_url REDIS_URL=$redis_url STREAM_PREFIX='' LOG_LEVEL=warn \
  "$work/loomipay" dev --addr "127.0.0.1:$api_port" --sandbox-addr "127.0.0.1:$sandbox_port" \
  --state-dir "$work/state" --apps "$app_id" >"$work/dev.out" 2>"$work/dev.log" &
dev_pid=$!

show_stack_log() {
  log "loomipay dev log (last 40 lines):"
  tail -n 40 "$work/dev.log" >&2 || true
}

answer=
for _ in $(seq 1 "$(($(budget 30) * 5))"); do
  answer=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$api_url/api/v1/payment-orders/none?app_id=$app_id" || true)
  [[ $answer == 401 ]] && break
  kill -0 "$dev_pid" 2>/dev/null || break
  sleep 0.2
done
if [[ $answer != 401 ]]; then
  log "the API did not answer (last HTTP status: ${answer:-none})"
  show_stack_log
  exit 1
fi

api_key=$(DATABASE_URL=$database_url REDIS_URL=$redis_url timeout "$(budget 20)" \
  "$work/loomipay" keys create --app-id "$app_id" --label "guide clients run" 2>/dev/null)

export LOOMI_PAY_BASE_URL=$api_url LOOMI_PAY_API_KEY=$api_key APP_ID=$app_id REDIS_URL=$redis_url
passed=0
failed=0

log "python: the guide's LoomipayClient (Debian's /usr/bin/python3)"
if PYTHONDONTWRITEBYTECODE=1 timeout "$(budget 70)" /usr/bin/python3 clients/python/run_guide_client.py; then
  passed=$((passed + 1))
else
  failed=$((failed + 1))
  show_stack_log
fi

log "node: the guide's LoomipayClient (node $(node --version))"
if (cd clients/node && timeout "$(budget 90)" npm ci --no-audit --no-fund --loglevel=error >/dev/null) \
  && timeout "$(budget 70)" node clients/node/run_guide_client.js; then
  passed=$((passed + 1))
else
  failed=$((failed + 1))
  show_stack_log
fi

echo "guide clients: $passed passed, $failed failed"
((failed == 0))
