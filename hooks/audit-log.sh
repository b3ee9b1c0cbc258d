#!/bin/sh
# Appends every event it is given (one JSON line on stdin) to .bftswarm/audit.log
# in the swarm's home (the working directory of bftswarm).
# Register it per event, e.g.:
#   [[hooks]]
#   event = "transaction-committed"
#   command = "hooks/audit-log.sh"
set -eu
home="${BFTSWARM_HOME:-.bftswarm}"
mkdir -p "$home"
cat >> "$home/audit.log"
