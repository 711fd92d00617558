#!/bin/sh
# update-cvq-exec-pa: the control state survives daemon-driven exec-mode updates (paths A, B, C) on the
# "hwreset" modules (a reset forgets the CVQ-set MAC, like hardware), PA mode.  minivmm sets its MAC
# through the CVQ and sends every frame to it: zero lost frames, the B/C successor replays the MAC
# CVQ-first (every command used before the data queues are enabled, vdpa_sim_net counts the command),
# path A replays nothing; vlud's verdict has the replay time (cvq_replay_ms) on B and C.  Negative: with
# MINIVMM_TEST_NO_CVQ_RESTORE=1 a B or C new image does not replay: vlud's verification finds config.mac
# differing, undeclared, kills it and restarts the previous binary, which restores the MAC (rolled-back,
# frames flow again).  Declared: the new image does not replay and declares config.mac changed: verified
# ok, the frames lost and minivmm reports the MAC mismatch.  --no-cvq still works (broadcast, no state).
# flavour: debian
# modules: hwreset
# use_va: 0
# devices: 1
# timeout: 540
. /scenarios/lib/cvq.sh
cvq_case exec-a exec A pa
cvq_case exec-b exec B pa
cvq_case exec-c exec C pa
cvq_case declared-b exec B pa declared
cvq_noreplay_case noreplay-b exec B
cvq_noreplay_case noreplay-c exec C
cvq_case nocvq-b exec B pa nocvq
exit $((FAILS > 0))
