#!/bin/sh
# timeout: 20
echo "ok - self-fail/one"
echo "not ok - self-fail/two: deliberate"
