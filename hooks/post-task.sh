#!/bin/sh
# The tutorial's post-task hook: says what ended and how it went.
#   [[hooks]]
#   event = "post-task"
#   command = "hooks/post-task.sh"
event=
IFS= read -r event || [ -n "$event" ]
echo "post-task: finished $event" >&2
