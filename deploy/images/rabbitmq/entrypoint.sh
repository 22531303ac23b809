#!/bin/sh
# Start RabbitMQ in the foreground (PID 1, so `docker stop` reaches it) with settings from the
# environment: RABBITMQ_DEFAULT_USER/PASS/VHOST, RABBITMQ_NODE_PORT, RABBITMQ_ERLANG_COOKIE (shared
# by the nodes of a cluster). Files mounted into /etc/rabbitmq/conf.d/ are read after these.
set -eu
conf=/etc/rabbitmq/conf.d/10-container.conf
{
  # clients arrive from the container network, never from loopback: let `guest` in only when it
  # is the user asked for (testcontainers' default); other users are not restricted by this
  echo "loopback_users = none"
  echo "log.console = true"
  echo "log.console.level = info"
  echo "log.file = false"
  echo "listeners.tcp.default = ${RABBITMQ_NODE_PORT:-5672}"
  [ -n "${RABBITMQ_DEFAULT_USER:-}" ] && echo "default_user = $RABBITMQ_DEFAULT_USER"
  [ -n "${RABBITMQ_DEFAULT_PASS:-}" ] && echo "default_pass = $RABBITMQ_DEFAULT_PASS"
  [ -n "${RABBITMQ_DEFAULT_VHOST:-}" ] && echo "default_vhost = $RABBITMQ_DEFAULT_VHOST"
  true
} >"$conf"
if [ -n "${RABBITMQ_ERLANG_COOKIE:-}" ]; then
  umask 077
  rm -f "$HOME/.erlang.cookie"  # a restarted container finds its read-only cookie from before
  printf '%s' "$RABBITMQ_ERLANG_COOKIE" >"$HOME/.erlang.cookie"
  chmod 400 "$HOME/.erlang.cookie"
  unset RABBITMQ_ERLANG_COOKIE  # the file is the supported way; the variable is deprecated
fi
exec rabbitmq-server "$@"
