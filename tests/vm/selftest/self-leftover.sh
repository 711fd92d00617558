#!/bin/sh
# Leaves a process holding /dev/vhost-vdpa-0: the runner kills it so the next scenario can open it.
# timeout: 20
sh -c 'exec 5<> /dev/vhost-vdpa-0; sleep 1000' &
sleep 0.5
echo "ok - self-leftover/started"
