#!/bin/sh
# self-ondemand: `default: no`: rig.sh check without names must leave it out (run.sh checks the comment line
# that names it, and that it did not run)
# default: no
echo "not ok - self-ondemand/ran: a default: no scenario ran without being named"
exit 1
