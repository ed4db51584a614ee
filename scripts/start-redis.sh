#!/usr/bin/env bash
# Make sure Redis answers on 127.0.0.1:6379 for the sentiment stream tests: start Debian's
# redis-server when nothing listens there (installing the package if it is missing).
set -euo pipefail

PORT="${AIGC_REDIS_PORT:-6379}"
answers() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

if answers; then
  echo "start-redis: Redis answers on 127.0.0.1:$PORT"
  exit 0
fi
SUDO=()
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo -n)
fi
if ! command -v redis-server >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  ${SUDO[@]+"${SUDO[@]}"} apt-get install -y --no-install-recommends redis-server \
    || { ${SUDO[@]+"${SUDO[@]}"} apt-get update && \
         ${SUDO[@]+"${SUDO[@]}"} apt-get install -y --no-install-recommends redis-server; }
fi
redis-server --port "$PORT" --bind 127.0.0.1 --daemonize yes --save "" --appendonly no
for _ in $(seq 50); do
  if answers; then
    echo "start-redis: started redis-server on 127.0.0.1:$PORT"
    exit 0
  fi
  sleep 0.1
done
echo "start-redis: redis-server did not answer on 127.0.0.1:$PORT" >&2
exit 1
