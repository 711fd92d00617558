#!/bin/sh
# timeout: 60
echo "ok - self-warn/x"
echo "WARNING: CPU: 0 PID: 1 at self-test" > /dev/kmsg
