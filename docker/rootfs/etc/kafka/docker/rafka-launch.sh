# Sourced by every launcher in the image (/etc/kafka/docker/run, /etc/confluent/docker/*,
# /opt/bitnami/scripts/kafka/run.sh). The rules themselves are in `rafka docker-setup`.

RAFKA_BIN=${RAFKA_BIN:-/opt/kafka/bin/rafka}

# rafka_setup FLAVOUR FINAL_CONFIG [docker-setup options...]: renders FINAL_CONFIG from the
# environment and mounted files and exports RAFKA_CLUSTER_ID (empty: the broker picks one).
rafka_setup() {
    local flavour=$1 final=$2
    shift 2
    RAFKA_CLUSTER_ID=$("$RAFKA_BIN" docker-setup --flavour "$flavour" --final-config "$final" "$@")
    export RAFKA_CLUSTER_ID
}

# rafka_exec_broker CONFIG: replaces this shell with the broker (PID 1 in the container, so
# `docker stop`'s SIGTERM reaches it). CONFIG already holds everything the KAFKA_* variables
# meant under this image's rules, so they are removed: the broker must not apply them again
# under its own (apache) rules.
rafka_exec_broker() {
    local config=$1 var
    for var in $(compgen -e); do
        case $var in
            KAFKA_* | CLUSTER_ID) unset "$var" ;;
        esac
    done
    if [[ -n ${RAFKA_CLUSTER_ID:-} ]]; then
        export CLUSTER_ID=$RAFKA_CLUSTER_ID
    fi
    unset RAFKA_CLUSTER_ID
    echo "===> Launching rafka with $config"
    exec "$RAFKA_BIN" "$config"
}
