#!/bin/sh
# The tutorial's pre-task hook: says what is about to start. Exiting non-zero
# would veto the task (bftswarm run then stops before sending anything).
#   [[hooks]]
#   event = "pre-task"
#   command = "hooks/pre-task.sh"
event=
IFS= read -r event || [ -n "$event" ]
echo "pre-task: starting $event" >&2
exit 0
