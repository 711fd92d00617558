#!/bin/sh
# The guest kernel panics in the middle of this scenario: it fails, the next ones run in a new boot.
# timeout: 30
echo "ok - self-crash/before"
echo 1 > /proc/sys/kernel/sysrq
echo c > /proc/sysrq-trigger
sleep 30
