#!/bin/sh
# The guest cannot even boot with this little memory: it dies before its first scenario. The rig boots
# once more (rare early-boot oopses under a loaded TCG host are not this project's failures), and a
# second early death is reported as a failure.
# memory: 40M
# timeout: 60
echo "ok - self-earlydeath/unreachable"
