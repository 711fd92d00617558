#!/bin/sh
# timeout: 10
echo hello
