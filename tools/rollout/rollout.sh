#!/usr/bin/env bash
# Rolls a sparse candidate variant out against a baseline, step by step, through the admin API:
#   0% -> shadow -> 10% -> 50% -> 100% (promote)
# Before each step it prints the shadow comparison (MAE, max error, flag agreement, drops) and asks
# for confirmation; answering "r" rolls the last step back. Needs bash and curl (jq pretty-prints if present).
#
# Every step is written to the model's shared rollout state, so one run drives the whole fleet: point
# --url at any one replica (or at the admin Service in Kubernetes); every replica converges to each step
# within one poll interval. After each step the script prints the revision written and where the
# answering replica stands (desired and served revision).
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: rollout.sh --model NAME --candidate VARIANT [options]

  --url URL               admin endpoint (default: http://localhost:8003, or $SPARSEINFERENCE_ADMIN_URL)
  --token TOKEN           admin bearer token (default: $SPARSEINFERENCE_ADMIN_TOKEN)
  --model NAME            model to roll out on (required)
  --candidate VARIANT     variant to roll out (required)
  --baseline VARIANT      variant that serves today (default: dense)
  --create PATTERN:SPARSITY  create or update the candidate first (e.g. bigbird:0.75)
  --weights DIR           with --create: load the candidate from its own weights directory
  --shadow-percent P      share of baseline traffic mirrored to the candidate (default: 100)
  --flag-threshold T      anomaly threshold for flag agreement in the comparison
  --guardrails JSON       set the model's own guardrail bounds first, for every replica, e.g.
                          '{"enabled":true,"maxP99LatencyMs":250,"minFlagAgreement":0.98}'
  --steps LIST            comma-separated steps (default: 0,shadow,10,50,100)
  --observe SECONDS       wait this long after each step before showing the comparison (default: 0)
  --yes                   do not ask; run every step
  -h, --help              this text
USAGE
}

url="${SPARSEINFERENCE_ADMIN_URL:-http://localhost:8003}"
token="${SPARSEINFERENCE_ADMIN_TOKEN:-}"
model="" candidate="" baseline="dense" create="" weights="" shadow_percent="100" flag_threshold="" guardrails=""
steps="0,shadow,10,50,100" observe=0 assume_yes=0

while [[ $# -gt 0 ]]; do
  case "$1" in
    --url) url="$2"; shift 2 ;;
    --token) token="$2"; shift 2 ;;
    --model) model="$2"; shift 2 ;;
    --candidate) candidate="$2"; shift 2 ;;
    --baseline) baseline="$2"; shift 2 ;;
    --create) create="$2"; shift 2 ;;
    --weights) weights="$2"; shift 2 ;;
    --shadow-percent) shadow_percent="$2"; shift 2 ;;
    --flag-threshold) flag_threshold="$2"; shift 2 ;;
    --guardrails) guardrails="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --observe) observe="$2"; shift 2 ;;
    --yes|-y) assume_yes=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "rollout.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done

fail() { echo "rollout.sh: $*" >&2; exit 1; }
[[ -n "$model" ]] || fail "--model: expected a model name, actual none"
[[ -n "$candidate" ]] || fail "--candidate: expected a variant name, actual none"
[[ -n "$token" ]] || fail "--token: expected the admin token (or SPARSEINFERENCE_ADMIN_TOKEN), actual none"
[[ "$shadow_percent" =~ ^[0-9]+([.][0-9]+)?$ ]] || fail "--shadow-percent: expected a number in [0, 100], actual '$shadow_percent'"
[[ -z "$flag_threshold" || "$flag_threshold" =~ ^-?[0-9]+([.][0-9]+)?$ ]] || fail "--flag-threshold: expected a number, actual '$flag_threshold'"
[[ "$observe" =~ ^[0-9]+$ ]] || fail "--observe: expected whole seconds, actual '$observe'"
[[ -z "$guardrails" || "$guardrails" == \{*\} ]] || fail "--guardrails: expected a JSON object, actual '$guardrails'"

base="${url%/}/admin/models/${model}"

pretty() {
  if command -v jq >/dev/null 2>&1; then jq .; else cat; echo; fi
}

# call METHOD PATH [BODY]: prints the response body; exits with the server's error on a non-2xx status.
call() {
  local method="$1" path="$2" body="${3:-}" out status
  out="$(mktemp)"
  local args=(-sS -o "$out" -w '%{http_code}' -X "$method" -H "Authorization: Bearer ${token}")
  if [[ -n "$body" ]]; then
    args+=(-H 'Content-Type: application/json' --data "$body")
  fi
  status="$(curl "${args[@]}" "${base}${path}")" || { rm -f "$out"; fail "$method ${base}${path}: request failed"; }
  if [[ "$status" != 2* ]]; then
    echo "rollout.sh: $method ${base}${path} -> HTTP $status" >&2
    cat "$out" >&2; echo >&2
    rm -f "$out"
    exit 1
  fi
  cat "$out"
  rm -f "$out"
}

shadow_json() {
  local t=""
  [[ -n "$flag_threshold" ]] && t=",\"flagThreshold\":${flag_threshold}"
  printf '{"variant":"%s","percent":%s%s}' "$candidate" "$shadow_percent" "$t"
}

# The fleet's state as the answering replica sees it: the revision in the store and the one it serves.
show_state() {
  local state
  state="$(call GET /rollout)"
  if command -v jq >/dev/null 2>&1; then
    jq -r '"rollout revision \(.desiredRevision) in the store; replica \(.replica) serves \(.appliedRevision)" + (if .lastError then " (refused: \(.lastError.message))" else "" end)' <<<"$state"
  else
    echo "$state"
  fi
}

show_comparison() {
  echo "--- comparison (${model}) ---"
  call GET /comparison | pretty
}

confirm() {
  [[ "$assume_yes" == 1 ]] && return 0
  ( : </dev/tty ) 2>/dev/null || fail "no terminal to ask on: pass --yes to run every step unattended"
  local answer
  while true; do
    read -r -p "Next: $1. Continue? [y]es / [n]o (stop here) / [r]ollback last step: " answer </dev/tty
    case "$answer" in
      y|Y|yes) return 0 ;;
      n|N|no|"") echo "Stopped; the current split stays in place."; exit 0 ;;
      r|R|rollback) call POST /rollback | pretty; show_state; echo "Rolled back on every replica."; exit 0 ;;
    esac
  done
}

if [[ -n "$create" ]]; then
  pattern="${create%%:*}"
  sparsity="${create#*:}"
  [[ "$create" == *:* && -n "$pattern" && "$sparsity" =~ ^[0-9]*[.]?[0-9]+$ ]] || fail "--create: expected PATTERN:SPARSITY (e.g. bigbird:0.75), actual '$create'"
  body="{\"pattern\":\"${pattern}\",\"sparsity\":${sparsity}"
  [[ -n "$weights" ]] && body+=",\"weights\":\"${weights}\""
  body+="}"
  echo "=== building ${candidate} (${pattern}, sparsity ${sparsity}) ==="
  call PUT "/variants/${candidate}" "$body" >/dev/null
fi

if [[ -n "$guardrails" ]]; then
  echo "=== guardrails of ${model} (every replica) ==="
  call PUT /guardrails "$guardrails" >/dev/null
  show_state
fi

echo "=== variants of ${model} ==="
call GET /variants | pretty

IFS=',' read -r -a plan <<<"$steps"
for step in "${plan[@]}"; do
  case "$step" in
    0) desc="${candidate} defined, 0% of traffic"
       body="{\"weights\":{\"${baseline}\":100,\"${candidate}\":0}}" ;;
    shadow) desc="mirror ${shadow_percent}% of traffic to ${candidate} (answers still from ${baseline})"
       body="{\"weights\":{\"${baseline}\":100,\"${candidate}\":0},\"shadow\":$(shadow_json)}" ;;
    100) desc="promote ${candidate} to 100%"
       body="" ;;
    *) [[ "$step" =~ ^[0-9]+$ && "$step" -lt 100 ]] || fail "--steps: expected 0, shadow or a percentage up to 100, actual '$step'"
       desc="${step}% of traffic to ${candidate} (shadow kept on the rest)"
       body="{\"weights\":{\"${baseline}\":$((100 - step)),\"${candidate}\":${step}},\"shadow\":$(shadow_json)}" ;;
  esac

  show_comparison
  confirm "$desc"
  echo "=== ${desc} ==="
  if [[ "$step" == 100 ]]; then
    call POST "/promote/${candidate}" | pretty
  else
    call PUT /split "$body" | pretty
  fi
  show_state
  if [[ "$observe" -gt 0 ]]; then
    echo "observing for ${observe}s ..."
    sleep "$observe"
  fi
done

show_comparison
echo "Rollout of ${candidate} on ${model} finished; every replica follows the shared state."
