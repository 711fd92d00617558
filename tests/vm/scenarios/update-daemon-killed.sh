#!/bin/sh
# update-daemon-killed: vlud is killed (SIGKILL) and restarted with its fd store, while idle and in the
# middle of a live update.  vlud runs under vlu-fdstore (tests/vm/guest/vlu-fdstore.c: the fd-store part
# of PID 1, as vlud.socket + vlud.service would under systemd), minivmm --vlud runs traffic.
#   idle     no update: vlud killed and restarted: every held fd adopted (count and names), the VMM
#            reattaches by itself (reattach:true), nothing reported (no last verdict), traffic unaffected
#   in-save  update.start (exec mode, path C) with the VMM stopped in phase save (MINIVMM_TEST_STOP_AT=save,
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
#   stopped-before-claim  transfer mode, path C: the old VMM closed its copy of the device at the save, the
#            spawned successor stopped before its claim, vlud stopped with SIGTERM (R10; vlu-fdstore
#            --restart-on-exit starts it again): vlud's copy, never released, is still the old VMM's device;
#            the old VMM, told the verdict alone by a vlud that answers no fd.retrieve any more, reattaches to
#            the vlud started again and takes the device back from it (VmPin unchanged, the same fds, traffic
#            with 0 lost); the successor, continued, is refused its claim and exits (review finding MEDIUM: the
#            old VMM stopped, so a `systemctl restart vlud` took the VM down)
# flavour: debian
# modules: stock
# use_va: 0
# devices: 1
# timeout: 390
. /scenarios/lib/update.sh
. /scenarios/lib/daemon-killed.sh
DK_PATH=C
dk_run
