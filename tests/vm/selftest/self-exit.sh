#!/bin/sh
# timeout: 20
echo "ok - self-exit/one"
exit 3
