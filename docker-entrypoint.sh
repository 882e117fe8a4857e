#!/bin/sh
# The image's entrypoint: make sure the agent can write its data folder, then run the command as the agent.
#
# Started as root (the default), it gives the data folder to the agent's uid when a bind mount or a
# volume left it owned by someone else, then drops to that uid. Started as another user (Kubernetes
# runAsUser, docker run --user), it cannot change owners, so it only checks that the folder is
# writable. Either way a folder it cannot write ends the container with one line saying what to do.
set -eu

data="${MEMORY_AGENT_DATA_DIR:-/data}"
uid="${MEMORY_AGENT_UID:-10001}"
gid="${MEMORY_AGENT_GID:-$uid}"

fail() {
    echo "memory-agent: error: $1" >&2
    exit 1
}

can_write() {  # as the user running the command
    probe="$data/.memory-agent-write-test.$$"
    if "$@" sh -c ': > "$1" && rm -f "$1"' sh "$probe" 2>/dev/null; then
        return 0
    fi
    return 1
}

[ -d "$data" ] || mkdir -p "$data" 2>/dev/null || fail "$data does not exist and cannot be created"

if [ "$(id -u)" = 0 ]; then
    as_agent="setpriv --reuid=$uid --regid=$gid --clear-groups"
    # Only files the agent does not own yet: a large folder that is already right costs nothing.
    if [ -n "$(find "$data" -xdev ! -user "$uid" -print -quit)" ]; then
        find "$data" -xdev ! -user "$uid" -exec chown "$uid:$gid" {} + 2>/dev/null || true
    fi
    # shellcheck disable=SC2086  # the command and its options, split on purpose
    can_write $as_agent || fail "$data is not writable by uid $uid and its owner cannot be changed (a read-only or root-squashed volume?): make it writable by uid $uid, e.g. chown -R $uid:$gid on the host or fsGroup: $gid in Kubernetes"
    # shellcheck disable=SC2086
    exec $as_agent "$@"
fi

can_write || fail "$data is not writable by uid $(id -u): give the folder to that uid (chown -R $(id -u) on the host), or set fsGroup: $(id -g) in the pod's securityContext"
exec "$@"
