#!/bin/sh
# Runs after self-leftover in the same boot: the device must be free again.
# timeout: 20
if (exec 5<> /dev/vhost-vdpa-0) 2>/dev/null; then echo "ok - self-next/device-free"; else echo "not ok - self-next/device-free: still busy"; fi
