/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * update-decide.c - the phase table and the rollback decision (see update-decide.h).
 * Pure: no I/O, no globals but the constant table, no logging.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "update-decide.h"

const struct phase_info update_phases[PH_COUNT] = {
	[PH_PREFLIGHT] = { "preflight", DL_NONE, EXPECT_NOTHING, PARTY_NONE },
	[PH_SUSPEND] = { "suspend", DL_SUSPEND, EXPECT_NOTHING, PARTY_NONE },
	[PH_SAVE] = { "save", DL_SAVE, EXPECT_SAVED, PARTY_OLD },
	[PH_RESET] = { "reset", DL_NONE, EXPECT_NOTHING, PARTY_NONE },
	[PH_EXEC] = { "exec", DL_EXEC_CLAIM, EXPECT_CLAIM, PARTY_NEW },
	[PH_SPAWN] = { "spawn", DL_EXEC, EXPECT_NOTHING, PARTY_NONE },
	[PH_CLAIM] = { "claim", DL_CLAIM, EXPECT_CLAIM, PARTY_NEW, EXPECT_ARMED, PARTY_OLD },
	[PH_RESTORE] = { "restore", DL_COMMIT, EXPECT_READY, PARTY_NEW },
	[PH_RESUME] = { "resume", DL_NONE, EXPECT_NOTHING, PARTY_NONE },
	[PH_VERIFY] = { "verify", DL_NONE, EXPECT_NOTHING, PARTY_NONE },
	[PH_COMMIT] = { "commit", DL_NONE, EXPECT_NOTHING, PARTY_NONE },
	[PH_ROLLBACK] = { "rollback", DL_COMMIT, EXPECT_READY, PARTY_OLD },
	[PH_DONE] = { "done", DL_NONE, EXPECT_NOTHING, PARTY_NONE },
};

int update_phase_by_name(const char *name)
{
	for (int i = 0; i < PH_COUNT; i++)
		if (strcmp(update_phases[i].name, name) == 0)
			return i;
	return -1;
}

const char *update_phase_name(enum phase ph)
{
	return (unsigned)ph < PH_COUNT ? update_phases[ph].name : "?";
}

bool update_phase_permits(enum phase ph, enum phase_cmd cmd, enum phase_party from)
{
	if ((unsigned)ph >= PH_COUNT || cmd == EXPECT_NOTHING)
		return false;
	return (update_phases[ph].expects == cmd && update_phases[ph].from == from) ||
	       (update_phases[ph].also_expects == cmd && update_phases[ph].also_from == from);
}

const char *update_action_name(enum rb_action a)
{
	static const char *const names[] = {
		[RB_IGNORE] = "ignore",
		[RB_CONTINUE] = "continue",
		[RB_KILL_OLD] = "kill-old",
		[RB_KILL_NEW] = "kill-new",
		[RB_RESTART_PREVIOUS] = "restart-previous",
		[RB_RESUME] = "resume",
		[RB_RESUME_ORPHANED] = "resume-orphaned",
		[RB_RECLAIM] = "reclaim",
		[RB_HOLD_RECLAIM] = "hold-reclaim",
		[RB_RETAKE] = "retake",
		[RB_RETAKE_REOPENED] = "retake-reopened",
		[RB_KEEP_SUSPENDED] = "keep-suspended",
		[RB_KEEP] = "keep",
		[RB_KEEP_RETAKE] = "keep-retake",
		[RB_STOP] = "stop",
		[RB_FAIL] = "fail",
	};

	return (unsigned)a < sizeof(names) / sizeof(names[0]) && names[a] ? names[a] : "?";
}

const char *update_trigger_name(enum rb_trigger t)
{
	switch (t) {
	case RBT_FAILED:
		return "failed";
	case RBT_DEADLINE:
		return "deadline";
	case RBT_OLD_EXIT:
		return "old exited";
	case RBT_NEW_EXIT:
		return "new exited";
	case RBT_VERIFY:
		return "verification failed";
	case RBT_STOP:
		return "stop";
	}
	return "?";
}

bool update_tells_old(const struct rb_facts *f)
{
	return f->old_conn && f->old_alive;
}

const char *update_action_result(enum rb_action a, bool lost)
{
	switch (a) {
	case RB_RESUME:
	case RB_RECLAIM:
	case RB_HOLD_RECLAIM:
		return lost ? "failed" : "rolled-back"; /* device_lost in the verdict */
	case RB_RESUME_ORPHANED:
	case RB_KEEP_SUSPENDED:
	case RB_KEEP:
	case RB_KEEP_RETAKE:
	case RB_STOP:
	case RB_FAIL:
		return "failed";
	default:
		return NULL; /* the update goes on */
	}
}

/* The deadline passed: the process that may hold (or is about to take) the instance's fds and that D may
 * kill: exec mode, the exec'ed image (O's pid, its old connection gone) in phase exec or after its claim;
 * transfer mode, the successor after its claim, or one D spawned (N, or the restarted previous binary)
 * that never claimed.  Never O in transfer mode, never an operator-named successor before its claim (it
 * holds nothing), never during a path-C retake (O is the late one). */
static enum rb_action late_process(const struct rb_facts *f)
{
	if (f->retake)
		return RB_IGNORE;
	if (!f->transfer && !f->restarted)
		return (f->phase == PH_EXEC || f->phase == PH_RESTORE) && !f->old_conn && f->old_alive ? RB_KILL_OLD
													: RB_IGNORE;
	if (!f->new_alive)
		return RB_IGNORE;
	if (f->phase == PH_RESTORE || (f->phase == PH_CLAIM && (f->spawned || f->restarted)))
		return RB_KILL_NEW;
	return RB_IGNORE;
}

/* R14: transfer mode, an update of iommufd/VFIO devices only whose contexts use mm accounting, after N's
 * claim, N failed (its verification, or the restore deadline) and still runs, O alive on its connection,
 * and the policy lets D act on N: N is kept alive, stopped (SIGSTOP: it can neither call CHANGE_PROCESS
 * again nor tear its mappings down), while O takes the charge back with its CHANGE_PROCESS, and killed
 * only after that.  Killing N first would leave the charge on an mm without users, and O's
 * CHANGE_PROCESS uncharging that mm is the second kernel bug (a WARN and a partial move on a kernel
 * without the fix, which vlud cannot tell).  User accounting keeps the kill first (a dead mm's uncharge
 * works there); a mixed instance too (O's VHOST_NEW_OWNER needs N's mm dead on A/B, the release of the
 * reopened device N's copy closed on C), which is why the preflight refuses a mixed instance in mm
 * accounting (iof_preflight()): the condition stays as the decision's own guard. */
static bool hold_successor(const struct rb_facts *f)
{
	return f->transfer && f->iommufd && f->iof_mm && !f->vdpa && f->phase >= PH_RESTORE && f->phase < PH_ROLLBACK &&
	       !f->retake && f->new_alive && f->old_alive && f->old_conn && f->pol_kill_failed_successor &&
	       !f->kill_pending && !f->kill_failed && !f->new_held && !f->hold_failed;
}

/* the end state per phase (docs/UPDATE.md "Rollback") */
static enum rb_action rollback_action(const struct rb_facts *f)
{
	if (f->retake)
		return RB_KEEP_RETAKE; /* bringing the device back to O failed */
	/* exec mode, the old image is gone (exec'ed into something that failed): the previous binary (not
	 * when a path-C reopen lost a device: there is nothing to hand it; not while the successor still
	 * runs with the fds) */
	if (!f->lost && !f->transfer && !f->restarted && f->phase >= PH_EXEC && (!f->old_conn || !f->old_alive) &&
	    f->pol_restart_previous && !f->restart_failed && f->prev_binary && f->saved &&
	    !(f->phase >= PH_RESTORE && f->new_alive))
		return RB_RESTART_PREVIOUS;
	if (f->phase <= PH_CLAIM) {
		/* nobody claimed: D's device fds are unchanged and O (if it still runs the old image) is still the
		 * owner */
		if (!f->transfer && !f->old_conn && f->phase >= PH_EXEC)
			return RB_KEEP_SUSPENDED; /* O exec'ed into something that never claimed (or died) */
		if (!f->old_alive)
			return RB_RESUME_ORPHANED;
		if (f->transfer && f->route == 'C' && f->released && !f->lost && f->old_conn && f->inst_on_old_conn)
			return RB_RETAKE_REOPENED; /* the claimant's connection was gone before the hand-over */
		return RB_RESUME;
	}
	/* N has the fds; exec mode: the old image no longer exists */
	if (!f->transfer)
		return RB_KEEP;
	if (f->old_alive && f->old_conn && f->route != 'C')
		return RB_RECLAIM;
	if (f->route == 'C' && f->old_alive && f->old_conn && f->old_conn_free && !f->lost && !f->new_alive)
		return RB_RETAKE;
	return RB_KEEP;
}

enum rb_action update_decide(const struct rb_facts *f)
{
	switch (f->trigger) {
	case RBT_STOP:
		return RB_STOP;
	case RBT_OLD_EXIT:
		if (((f->transfer && f->phase >= PH_RESTORE) || f->restarted) && !f->retake)
			return RB_IGNORE; /* O may exit once N has everything: D verifies without it */
		if (f->transfer && f->phase == PH_CLAIM && f->saved && !f->retake && !f->old_killed)
			return RB_CONTINUE; /* everything N needs is with D: the update goes on without O */
		if (f->claim_pending)
			return RB_IGNORE; /* exec mode, the claimant: see below */
		break;
	case RBT_NEW_EXIT:
		if (f->retake)
			return RB_IGNORE; /* the device is being brought back to O: N no longer matters */
		/* path C, the claimant died while D's old device copies are being closed: the close completes
		 * first, D reopens the device and, the claimant gone, rolls back with it (claim_released());
		 * deciding now would end the update with the device lost (the closer owns the old fds) */
		if (f->claim_pending)
			return RB_IGNORE;
		break;
	case RBT_DEADLINE:
		if (f->pol_kill_failed_successor && !f->kill_pending && !f->kill_failed) {
			enum rb_action a = late_process(f);

			if (a == RB_KILL_NEW && hold_successor(f))
				return RB_HOLD_RECLAIM; /* R14: N stopped, not killed, until O took the charge back */
			if (a != RB_IGNORE)
				return a;
		}
		break;
	case RBT_VERIFY:
		/* exec mode, the claimed image is gone already: it died right after its update.ready, and D's
		 * verification (VmPin of a dead process: unreadable) ran before its exit was seen on its pidfd.
		 * What failed is that it died after its claim: decide as its exit does (R3: the previous
		 * binary), not as R5 ("failed", the successor running on with everything: nobody runs).  Not
		 * path A after D's RESUME: its devices ran under the dead image (R5, as below) */
		if (!f->transfer && !f->old_alive && !f->new_alive && !(f->vdpa && f->route == 'A' && f->phase >= PH_RESUME))
			return rollback_action(f);
		/* exec mode, paths B and C, the device's state differs (R12): the guest's device lost what the
		 * successor should have restored, and D holds the saved state: the successor (O's pid) is
		 * killed and, at its exit, the previous binary restores it from a reset device (R3) */
		/* exec mode, iommufd (R13): the charge of the pinned memory is with the claimed image that failed
		 * (it called CHANGE_PROCESS) or still with the dead old mm (it did not): only a claimant's
		 * CHANGE_PROCESS takes it, so the claimed image is killed and the previous binary, restarted,
		 * claims and calls it (verified by VmPin like any claimant) */
		/* (a mixed instance on path A: only a failure found before D's RESUME, phase restore; once its
		 * vhost-vdpa devices run again under N, the saved state no longer describes them: as R5) */
		if (!f->transfer &&
		    ((f->device_state && f->route != 'A') ||
		     (f->iommufd && !(f->vdpa && f->route == 'A' && f->phase >= PH_RESUME))) &&
		    !f->restarted && !f->lost &&
		    f->old_alive &&
		    f->pol_kill_failed_successor && f->pol_restart_previous && f->prev_binary && f->saved &&
		    !f->kill_pending && !f->kill_failed)
			return RB_KILL_OLD;
		/* N still holds the device: O can take it back only without N (A/B: N would reset it when it
		 * exits; C: N's copy keeps the reopened device from being released) */
		if (!f->transfer || !f->old_alive)
			return RB_FAIL;
		if (hold_successor(f))
			return RB_HOLD_RECLAIM; /* R14 */
		if (f->pol_kill_failed_successor && !f->kill_pending && !f->kill_failed && f->new_alive)
			return RB_KILL_NEW;
		break;
	case RBT_FAILED:
		break;
	}
	return rollback_action(f);
}

int update_stat_starttime(const char *text, size_t len, unsigned long long *ret)
{
	const char *p = NULL, *end = text + len;
	unsigned long long v = 0;
	unsigned field = 2;

	for (size_t i = 0; text && i < len; i++)
		if (text[i] == ')')
			p = text + i;
	if (!p || !memchr(text, '(', (size_t)(p - text)))
		return -EINVAL;
	/* ") S ppid ...": field 3 starts after the blank that follows the name's ')' */
	for (p++; p < end && field < 22;) {
		if (*p != ' ')
			return -EINVAL;
		p++;
		field++;
		if (p == end || *p == ' ' || *p == '\n')
			return -EINVAL;
		if (field == 22)
			break;
		while (p < end && *p != ' ' && *p != '\n')
			p++;
	}
	if (field != 22)
		return -EINVAL;
	for (; p < end && *p != ' ' && *p != '\n'; p++) {
		if (*p < '0' || *p > '9' || v > (~0ULL - (unsigned)(*p - '0')) / 10)
			return -EINVAL;
		v = v * 10 + (unsigned)(*p - '0');
	}
	if (p == end || *p != ' ')
		return -EINVAL; /* more fields follow starttime in every kernel since 2.6 */
	*ret = v;
	return 0;
}

int update_stat_state(const char *text, size_t len, char *ret)
{
	const char *p = NULL;

	for (size_t i = 0; text && i < len; i++)
		if (text[i] == ')')
			p = text + i;
	if (!p || !memchr(text, '(', (size_t)(p - text)))
		return -EINVAL;
	/* ") S ppid": the letter after the blank that follows the name's last ')', then a blank */
	if ((size_t)(text + len - p) < 4 || p[1] != ' ' || p[2] < 'A' || p[2] > 'z' || p[3] != ' ')
		return -EINVAL;
	*ret = p[2];
	return 0;
}

char update_tasks_state(const char *letters, size_t n, bool more)
{
	size_t stopped = 0;

	for (size_t i = 0; i < n; i++) {
		if (letters[i] == 'T' || letters[i] == 't')
			stopped++;
		else if (letters[i] != 'Z' && letters[i] != 'X')
			return letters[i];
	}
	return more || !stopped ? '?' : 'T';
}

enum held_look update_held_look(bool alive, int stat_err, uint64_t start, char state, uint64_t held_start)
{
	if (!alive || stat_err == -ENOENT || stat_err == -ESRCH)
		return HELD_GONE;
	if (stat_err < 0)
		return HELD_UNREADABLE;
	if (start != held_start)
		return HELD_OTHER; /* (alive: the pidfd is that process's, so this is a later read gone wrong or a
				    * pid reused after it exited between the two looks) */
	return state == 'T' || state == 't' ? HELD_STOPPED : HELD_RUNNING;
}

const char *update_held_look_name(enum held_look l)
{
	switch (l) {
	case HELD_STOPPED:
		return "stopped";
	case HELD_RUNNING:
		return "running";
	case HELD_GONE:
		return "exited";
	case HELD_OTHER:
		return "another process";
	case HELD_UNREADABLE:
		return "unreadable";
	}
	return "?";
}

enum hold_step update_hold_step(enum held_look l, bool alive, int64_t waited_us, int64_t limit_us)
{
	switch (l) {
	case HELD_STOPPED:
		return HOLD_STEP_TELL;
	case HELD_GONE:
	case HELD_OTHER:
		return alive ? HOLD_STEP_KILL : HOLD_STEP_GONE;
	case HELD_RUNNING:
	case HELD_UNREADABLE:
		break;
	}
	return waited_us < limit_us ? HOLD_STEP_WAIT : HOLD_STEP_KILL;
}

enum restart_heir update_restart_heir(enum phase ph, bool resume, bool released, enum restart_held held)
{
	/* the held successor failed: the old VMM takes the charge back from its stopped mm, and the held
	 * successor is killed at the old VMM's reattach (a reservation to it would refuse that reattach) */
	if (held == RESTART_HELD_YES || resume || ph == PH_ROLLBACK || (ph <= PH_CLAIM && !released))
		return HEIR_OLD;
	/* the successor claimed every fd: the devices are its own (VHOST_NEW_OWNER, or path C's fresh open),
	 * and the iommufd charge is, once its CHANGE_PROCESS ran (in restore: vlud cannot tell whether it did,
	 * and only the successor can still make it); unless it may be a successor held stopped that nobody
	 * knows of any more: reserved to it, the instance would be nobody's for as long as it stays stopped */
	if (ph >= PH_RESTORE && ph <= PH_COMMIT)
		return held == RESTART_HELD_UNREADABLE ? HEIR_NONE : HEIR_NEW;
	return HEIR_NONE; /* path C after the release (vlud's reopen), done */
}
