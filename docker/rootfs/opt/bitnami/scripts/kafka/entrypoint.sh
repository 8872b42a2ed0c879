#!/usr/bin/env bash
# bitnami/kafka's entrypoint: runs the given command, by default the bitnami run script.
set -o nounset -o errexit
if [[ $# -eq 0 ]]; then
    set -- /opt/bitnami/scripts/kafka/run.sh
fi
exec "$@"
