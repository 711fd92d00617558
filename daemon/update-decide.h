/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * update-decide.h - the pure parts of the live-update engine (docs/UPDATE.md): the one phase table
 * (shared with daemon/state.c, which checks the phase names of a persisted record) and the one
 * rollback decision, a function of the facts with no side effects (tests/unit/test-update-decide.c
 * has a case per row of the rollback table in docs/UPDATE.md, by row id).
 *
 * No I/O, no globals, no libev: linked into the unit tests as it is.
 */
#ifndef VLUD_UPDATE_DECIDE_H
#define VLUD_UPDATE_DECIDE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum phase {
	PH_PREFLIGHT,
	PH_SUSPEND,
	PH_SAVE,
	PH_RESET,
	PH_EXEC,
	PH_SPAWN,
	PH_CLAIM,
	PH_RESTORE,
	PH_RESUME,
	PH_VERIFY,
	PH_COMMIT,
	PH_ROLLBACK, /* transfer mode, path C: O takes the reopened device back (RB_RETAKE) */
	PH_DONE,
	PH_COUNT,
};

/* the deadline a phase gets (timeouts.update.*, docs/CONFIG.md) */
enum phase_deadline {
	DL_NONE,	 /* D's own step on the loop, or the end */
	DL_SUSPEND,	 /* suspend_ms */
	DL_SAVE,	 /* save_ms */
	DL_EXEC_CLAIM,	 /* exec_ms + claim_ms: O execs, then the new image claims */
	DL_EXEC,	 /* exec_ms: a spawn */
	DL_CLAIM,	 /* claim_ms; commit_ms once the claim is accepted (the token is burnt) */
	DL_COMMIT,	 /* commit_ms */
};

/* the command a phase waits for, and from whom: the per-phase permits of update.saved, update.claim and
 * update.ready (update_phase_permits()) */
enum phase_cmd {
	EXPECT_NOTHING,	/* D's own step, or the end */
	EXPECT_SAVED,	/* update.saved */
	EXPECT_CLAIM,	/* update.claim */
	EXPECT_READY,	/* update.ready */
	EXPECT_ARMED,	/* update.armed (transfer mode, paths A and B: O consented to the successor's take-over) */
};

enum phase_party {
	PARTY_NONE,
	PARTY_OLD,	 /* O: update.saved (save), update.armed (claim), update.ready (rollback: the reopened
			  * device taken back) */
	PARTY_NEW,	 /* the successor: update.claim (exec, claim), update.ready (restore) */
};

struct phase_info {
	const char *name;
	enum phase_deadline deadline;
	enum phase_cmd expects;
	enum phase_party from;
	/* a second permit in the same phase: claim, O's update.armed before the successor's claim */
	enum phase_cmd also_expects;
	enum phase_party also_from;
};

/* indexed by enum phase; PH_COUNT entries */
extern const struct phase_info update_phases[PH_COUNT];

/* the phase called name, or -1 */
int update_phase_by_name(const char *name);
const char *update_phase_name(enum phase ph);
/* phase ph waits for cmd from party (the caller checks that the connection or pid is that party's) */
bool update_phase_permits(enum phase ph, enum phase_cmd cmd, enum phase_party from);

/* The start time of a process (field 22 of /proc/PID/stat: clock ticks after boot) from that file's text
 * (len bytes, need not be NUL-terminated).  0, or -EINVAL when the text is not such a line (the command
 * name, field 2, may hold spaces and parentheses: the fields are counted after its last ')').  Pure. */
int update_stat_starttime(const char *text, size_t len, unsigned long long *ret);
/* The state letter of that line (field 3: 'R', 'S', 'D', 'T' stopped, 't' traced, 'Z', ...) into *ret: 0, or
 * -EINVAL when the text is not such a line.  Pure. */
int update_stat_state(const char *text, size_t len, char *ret);
/* R14: the state of a thread group from its threads' letters (each /proc/PID/task/TID/stat's), since
 * /proc/PID/stat's letter is the leader's only and another thread may still be inside a system call:
 * 'T' when every thread is stopped ('T' or 't'), threads that are exiting ('Z', 'X': they run no more)
 * aside, at least one of them stopped; else the first other thread's letter; '?' when not every thread
 * was read (more: over the bound) or none was.  Pure. */
char update_tasks_state(const char *letters, size_t n, bool more);

/* R14: what /proc says of the successor D holds stopped.  alive: its pidfd says it runs; stat_err: the
 * result of reading /proc/PID/stat (0, or -errno), start and state read from it (when 0); held_start: its
 * start time recorded at the SIGSTOP.  Pure. */
enum held_look {
	HELD_STOPPED,	 /* that process, stopped ('T', or 't' traced) */
	HELD_RUNNING,	 /* that process, not stopped (yet, or continued by somebody) */
	HELD_GONE,	 /* it exited (the pidfd, or no /proc entry) */
	HELD_OTHER,	 /* the pid names another process now (another start time) */
	HELD_UNREADABLE, /* /proc/PID/stat could not be read or parsed (ENOMEM, EMFILE...) */
};
enum held_look update_held_look(bool alive, int stat_err, uint64_t start, char state, uint64_t held_start);
/* the verdict's words for it (held_successor.process) */
const char *update_held_look_name(enum held_look l);
/* The stop wait after the SIGSTOP (O is told once N is stopped), one poll: alive, N's pidfd says it runs;
 * waited_us since the SIGSTOP, limit_us the bound (HOLD_STOP_WAIT_MS).  Gone or another process by /proc
 * while the pidfd says alive: the pidfd is that very process, so it is killed through it (KILL), not
 * trusted gone.  Pure. */
enum hold_step {
	HOLD_STEP_WAIT, /* poll again */
	HOLD_STEP_TELL, /* stopped: O is told, successor_held */
	HOLD_STEP_GONE, /* exited (or its pid reused) before it was seen stopped: O is told, nothing held */
	HOLD_STEP_KILL, /* not stopped in time (or /proc lost it): killed first, O told once it has exited */
};
enum hold_step update_hold_step(enum held_look l, bool alive, int64_t waited_us, int64_t limit_us);

/* ---- after a restart of vlud during an update (docs/UPDATE.md "Only the device's owner reattaches") ---- */

/* Who may reattach the instance: the process that owned the device, or held the iommufd charge, when
 * vlud died in phase ph.  resume: the restarted vlud RESUMEs the old VMM's devices (it still owns them);
 * released: path C, vlud had released a device for the claim (its reopen is a fresh device, nobody's);
 * held: whether the state names this update's successor held stopped for the old VMM's take-back of the
 * iommufd charge (R14, recorded before the phase becomes rollback).  An iommufd-only update has no
 * device: resume and released false (its charge is the old VMM's until the successor's
 * IOMMU_IOAS_CHANGE_PROCESS in phase restore, after its claim).  Pure. */
enum restart_heir {
	HEIR_NONE,
	HEIR_OLD, /* old_pid */
	HEIR_NEW, /* new_pid */
};
enum restart_held {
	RESTART_HELD_NO,	 /* no held successor of this update in the state */
	RESTART_HELD_YES,	 /* "held_successor" names this update's successor */
	RESTART_HELD_UNREADABLE, /* an iommufd-only update whose instance's "held_successor" is malformed: its
				  * successor may be held stopped, and a reservation to it would last as long */
};
enum restart_heir update_restart_heir(enum phase ph, bool resume, bool released, enum restart_held held);

/* ---- the rollback decision ---- */

/* what happened */
enum rb_trigger {
	RBT_FAILED,	/* a step failed, update.abort, O's save error, N's restore error, a path-C release */
	RBT_DEADLINE,	/* the phase's deadline passed */
	RBT_OLD_EXIT,	/* O's process exited */
	RBT_NEW_EXIT,	/* the successor's process exited */
	RBT_VERIFY,	/* N's update.ready, but the verification failed */
	RBT_STOP,	/* the instance is released, or the daemon stops */
};

/* the facts the decision depends on, read by the engine (update-rollback.c, rb_facts()) */
struct rb_facts {
	enum rb_trigger trigger;
	bool transfer;		/* mode: transfer (false: exec) */
	char route;		/* 'A', 'B', 'C' */
	enum phase phase;
	/* the processes */
	bool old_alive;		/* O's process (its pidfd) */
	bool old_conn;		/* O's connection is open */
	bool old_conn_free;	/* ... and carries no instance (it can take this one back) */
	bool inst_on_old_conn;	/* the instance is attached to O's connection */
	bool new_alive;		/* the successor's process (exec mode after the claim: the claimed image) */
	bool spawned;		/* D spawned the successor (not an operator-named one) */
	/* what D did and holds */
	bool saved;		/* D holds O's saved state */
	bool released;		/* path C: D released its device copies at least once (the closer closed them) */
	bool lost;		/* path C: a device was closed and not reopened: D holds no fd of it */
	bool claim_pending;	/* path C: an accepted claim waits for the closer to close D's old device copies */
	bool prev_binary;	/* exec mode: the previous binary is known (/proc/PID/exe at start) */
	/* the stages after a first failure */
	bool restarted;		/* exec mode: the previous binary was restarted to take the device back */
	bool retake;		/* transfer mode, path C: the reopened device is being brought back to O */
	bool device_state;	/* RBT_VERIFY: what failed is the device's state (an undeclared difference) */
	bool iommufd;		/* the update moves iommufd mappings (IOMMU_IOAS_CHANGE_PROCESS by the claimant) */
	bool vdpa;		/* ... and vhost-vdpa devices (a mixed instance when both) */
	bool iof_mm;		/* ... whose contexts use mm accounting (IOMMU_OPTION_RLIMIT_MODE 1) */
	bool new_held;		/* D stopped the successor (SIGSTOP) until O has taken the charge back */
	bool kill_pending;	/* D killed a process and waits for its exit */
	bool old_killed;	/* that process was O's */
	/* retries: what the engine could not do when it was told to */
	bool kill_failed;	/* the SIGKILL could not be sent */
	bool restart_failed;	/* the previous binary could not be started */
	bool hold_failed;	/* the SIGSTOP could not be sent */
	/* policy (docs/CONFIG.md "update") */
	bool pol_restart_previous;
	bool pol_kill_failed_successor;
};

enum rb_action {
	RB_IGNORE,		/* nothing to do: this exit does not matter any more */
	RB_CONTINUE,		/* transfer mode, O exited after saving: N goes on (D has everything N needs) */
	RB_KILL_OLD,		/* SIGKILL O's pid (the exec'ed image); the decision runs again at its exit */
	RB_KILL_NEW,		/* SIGKILL the successor; likewise */
	RB_RESTART_PREVIOUS,	/* exec mode: spawn the previous binary, it claims like a successor */
	RB_RESUME,		/* nobody claimed, O owns the device: D RESUMEs -> rolled-back */
	RB_RESUME_ORPHANED,	/* before the hand-over, O's process is gone: D RESUMEs -> failed, orphaned */
	RB_RECLAIM,		/* transfer mode A/B after the claim: the instance returns to O, which re-owns */
	RB_HOLD_RECLAIM,	/* transfer mode, iommufd-only in mm accounting, after the claim, N failed and
				 * alive: D stops N (SIGSTOP), the instance returns to O, which takes the charge
				 * back from N's live mm; N is killed when that ends (R14) */
	RB_RETAKE,		/* transfer mode C after the claim: release, reopen, O takes the fresh fds */
	RB_RETAKE_REOPENED,	/* transfer mode C, the claim released and reopened but never handed over:
				 * O takes the fresh fds */
	RB_KEEP_SUSPENDED,	/* exec mode, the old image is gone before any claim: devices stay suspended,
				 * every fd kept -> failed */
	RB_KEEP,		/* after the claim, nobody to give the device back to: every fd kept -> failed */
	RB_KEEP_RETAKE,		/* bringing the device back to O failed: every fd kept -> failed */
	RB_STOP,		/* end now: D RESUMEs what it suspended -> failed */
	RB_FAIL,		/* end failed as it is (verification failed, nobody to return to) */
};

/* The one rollback decision: what the engine does about f.  Pure. */
enum rb_action update_decide(const struct rb_facts *f);
const char *update_action_name(enum rb_action a);
const char *update_trigger_name(enum rb_trigger t);
/* the result an action ends with ("rolled-back" or "failed"; NULL: the update goes on) */
const char *update_action_result(enum rb_action a, bool lost);
/* Is O told the update's end (update.rolled-back, update.completed) on its own connection, whatever it
 * subscribed to?  Whenever that connection is still O's and O runs, whatever the result: a VMM that
 * filtered the events out, or never subscribed, would otherwise stay suspended.  Exec mode: a connection
 * the new image kept across the exec is not O's (f->old_conn is false), the new image is told nothing more
 * than any subscriber.  Pure. */
bool update_tells_old(const struct rb_facts *f);

#endif
