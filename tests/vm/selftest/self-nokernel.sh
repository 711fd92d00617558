#!/bin/sh
# self-nokernel: `modules: selftest` on a flavour without a selftest kernel (debian) must fail before any boot,
# saying why (not a skip)
# modules: selftest
# timeout: 60
echo "not ok - self-nokernel/ran: it booted without a selftest kernel"
exit 1
