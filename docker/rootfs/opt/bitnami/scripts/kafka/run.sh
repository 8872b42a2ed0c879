#!/usr/bin/env bash
# bitnami/kafka's run script: KAFKA_CFG_* settings and bitnami's legacy aliases on top of the
# stock config with log.dirs /bitnami/kafka/data, or a mounted
# /bitnami/kafka/config/server.properties as it is (environment ignored). Writes
# /opt/bitnami/kafka/config/server.properties and execs the broker on it.
set -o nounset -o errexit
if [[ ${BITNAMI_DEBUG:-} == true || ${TRACE:-} == true ]]; then set -o xtrace; fi
# shellcheck source=/etc/kafka/docker/rafka-launch.sh
. /etc/kafka/docker/rafka-launch.sh
rafka_setup bitnami /opt/bitnami/kafka/config/server.properties \
    --default-configs-dir /etc/kafka/docker \
    --bitnami-configs-dir /bitnami/kafka/config
rafka_exec_broker /opt/bitnami/kafka/config/server.properties
