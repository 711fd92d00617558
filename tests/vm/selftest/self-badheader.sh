#!/bin/sh
# modules: bogus
echo "ok - self-badheader/should-not-run"
