#!/bin/sh
# Same boot configuration as self-hang: must still run (the rig boots again after a hung scenario).
# timeout: 20
echo "ok - self-after/ran"
