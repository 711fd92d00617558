#!/bin/sh
# modules: patched
# timeout: 60
vdpatest features
