#!/usr/bin/env bash
# Create (or update) the least-privilege RabbitMQ users of one sustainml namespace.
#
# One user per role - worker, orchestrator, publisher, operator - named <namespace>-<role>, with
# the configure/write/read regexes that sustainml.permissions derives from the topology (the single
# source of truth: `python -m sustainml.permissions --namespace NS`).
#
# Passwords: taken from SUSTAINML_<ROLE>_PASSWORD when set, else generated. They are passed to
# rabbitmqctl on standard input (never on a command line, where `ps` would show them) and never
# printed. Generated passwords are written to $CREDENTIALS_FILE (mode 600) as
# `role<TAB>user<TAB>password` lines so the operator can hand them out.
#
# Environment:
#   SUSTAINML_NAMESPACE   namespace (default sustainml)
#   RABBITMQ_VHOST        vhost (default /)
#   USER_PREFIX           user name prefix (default: the namespace)
#   ROLES                 roles to create (default: "worker orchestrator publisher operator")
#   CREDENTIALS_FILE      where generated passwords go (default ./sustainml-<ns>-credentials.tsv)
#   RABBITMQCTL           rabbitmqctl command (default rabbitmqctl; e.g. "docker exec rmq rabbitmqctl")
#   PYTHON                python with sustainml installed (default: .venv/bin/python if present, else python3)
#
# Usage: deploy/rabbitmq/create-users.sh            # create/update the users
#        deploy/rabbitmq/create-users.sh --delete   # remove them again
set -euo pipefail

NS="${SUSTAINML_NAMESPACE:-sustainml}"
VHOST="${RABBITMQ_VHOST:-/}"
PREFIX="${USER_PREFIX:-$NS}"
ROLES="${ROLES:-worker orchestrator publisher operator}"
CREDENTIALS_FILE="${CREDENTIALS_FILE:-./sustainml-${NS}-credentials.tsv}"
read -r -a RMQ <<<"${RABBITMQCTL:-rabbitmqctl}"
HERE="$(cd "$(dirname "$0")/../.." && pwd)"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$HERE/.venv/bin/python" ]]; then PYTHON="$HERE/.venv/bin/python"; else PYTHON=python3; fi
fi

wanted() { [[ " $ROLES " == *" $1 "* ]]; }

# One listing up front: every rabbitmqctl call starts an Erlang VM (seconds each).
EXISTING_USERS="$("${RMQ[@]}" --quiet list_users </dev/null 2>/dev/null | awk '{ print $1 }')"
user_exists() { grep -qxF -- "$1" <<<"$EXISTING_USERS"; }

if [[ "${1:-}" == "--delete" ]]; then
  for role in $ROLES; do
    user="$PREFIX-$role"
    if user_exists "$user"; then
      "${RMQ[@]}" --quiet delete_user "$user" >/dev/null
      echo "deleted $user"
    fi
  done
  exit 0
fi

PERMS="$("$PYTHON" -m sustainml.permissions --namespace "$NS" --format tsv)"
umask 077
generated=0
while IFS=$'\t' read -r -u 3 role configure write read; do
  wanted "$role" || continue
  user="$PREFIX-$role"
  var="SUSTAINML_$(tr '[:lower:]' '[:upper:]' <<<"$role")_PASSWORD"
  password="${!var:-}"
  if [[ -z "$password" ]]; then
    password="$(head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 32)"
    if [[ $generated -eq 0 ]]; then : >"$CREDENTIALS_FILE"; fi
    printf '%s\t%s\t%s\n' "$role" "$user" "$password" >>"$CREDENTIALS_FILE"
    generated=$((generated + 1))
  fi
  if user_exists "$user"; then
    printf '%s' "$password" | "${RMQ[@]}" --quiet change_password "$user" >/dev/null
    action="updated"
  else
    printf '%s' "$password" | "${RMQ[@]}" --quiet add_user "$user" >/dev/null
    action="created"
  fi
  "${RMQ[@]}" --quiet set_permissions -p "$VHOST" "$user" "$configure" "$write" "$read" >/dev/null
  echo "$action $user ($role) on vhost $VHOST"
done 3<<<"$PERMS"
# Topic permissions (routing keys a role may publish to a topic exchange), e.g. no NodeControl
# from workers: `python -m sustainml.permissions --format topic-tsv`.
TOPICS="$("$PYTHON" -m sustainml.permissions --namespace "$NS" --format topic-tsv)"
while IFS=$'\t' read -r -u 3 role exchange twrite tread; do
  [[ -n "$role" ]] || continue
  wanted "$role" || continue
  "${RMQ[@]}" --quiet set_topic_permissions -p "$VHOST" "$PREFIX-$role" "$exchange" "$twrite" "$tread" >/dev/null
  echo "topic permission for $PREFIX-$role on $exchange: write $twrite"
done 3<<<"$TOPICS"
if [[ $generated -gt 0 ]]; then
  echo "generated passwords for $generated user(s) are in $CREDENTIALS_FILE (mode 600)"
fi
