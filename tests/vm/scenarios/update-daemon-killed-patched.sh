#!/bin/sh
# update-daemon-killed-patched: the same as update-daemon-killed on patched modules with path A
# (NEW_OWNER + RESUME): vlud is killed (SIGKILL) and restarted with its fd store, while idle and in the
# middle of a live update.  vlud runs under vlu-fdstore (tests/vm/guest/vlu-fdstore.c: the fd-store part
# of PID 1, as vlud.socket + vlud.service would under systemd), minivmm --vlud runs traffic.
#   idle     no update: vlud killed and restarted: every held fd adopted (count and names), the VMM
#            reattaches by itself (reattach:true), nothing reported (no last verdict), traffic unaffected
#   in-save  update.start (exec mode, path A) with the VMM stopped in phase save (MINIVMM_TEST_STOP_AT=save,
#            so vlud has SUSPENDed the device and waits for update.saved); vlud killed: the restarted vlud
#            RESUMEs the device (it was never reset: the old VMM still owns it), records the verdict
#            failed "vlud restarted during the update (phase save): ..." (update.status), refuses a claim of
#            that update clearly, keeps every fd (count, names, the same fd store entries), VmPin unchanged;
#            the VMM, continued, finds vlud gone, takes its datapath back and reattaches: its traffic runs
#            again with no frame lost, and the restarted vlud leaks no fd
#   in-exec  the same with the VMM stopped at update.exec (state saved, not exec'ed yet: it still holds its
#            device fd, which the restarted vlud checks in /proc before it RESUMEs); continued, the VMM
#            does not exec (vlud hung up) and takes the device back
#   in-claimed  the new image stopped right after its claim (phase restore: it holds every fd; path C: the
#            device released and reopened for it): the restarted vlud only reports (device status as the
#            successor left it, nothing resumed), keeps every fd, refuses the claim; the new image, continued,
#            takes the device over, finds vlud gone at update.ready (path A: RESUMEs it itself), runs on and
#            reattaches: traffic with 0 lost, VmPin as expected, no fd leak
#   taken-back  transfer mode: the spawned successor stopped right after its claim, vlud killed; the old
#            VMM takes the device back and runs it, then is killed; the successor, continued, owns the
#            device by the dead mm's consent but must see that it ran since the save (vring bases past
#            the saved ones) and stop without driving it (chaos soak seed 20261205 kill 600)
#   stopped-claimed  transfer mode: the spawned successor stopped after its take-over (before update.ready),
#            vlud stopped with SIGTERM (R10; vlu-fdstore --restart-on-exit starts it again): the old VMM, told
#            the verdict alone, sees from the device that the successor owns it and stops without touching it
#            (no RESUME, no reattach); the successor, continued, reattaches and runs the device (review LOW 7)
# flavour: debian
# modules: patched
# use_va: 0
# devices: 1
# timeout: 420
. /scenarios/lib/update.sh
. /scenarios/lib/daemon-killed.sh
DK_PATH=A
dk_run
