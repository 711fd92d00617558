#!/bin/sh
# timeout: 10
echo "ok - self-hang/before"
sleep 1000
