#!/bin/sh
# The tutorial's onMaliciousDetected notifier: records each detection (one JSON
# line on stdin) in .bftswarm/detections.jsonl and says so on stderr.
#   [[hooks]]
#   event = "malicious-detected"
#   command = "hooks/on-malicious-detected.sh"
#   timeout_ms = 2000
set -eu
home="${BFTSWARM_HOME:-.bftswarm}"
mkdir -p "$home"
event=
IFS= read -r event || [ -n "$event" ]
printf '%s\n' "$event" >> "$home/detections.jsonl"
echo "malicious agent detected; recorded in $home/detections.jsonl" >&2
