/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-update-decide.c - the rollback decision (daemon/update-decide.c), one case per row of the rollback
 * table in docs/UPDATE.md ("## Rollback"), each named by the row's id (R1_..., R2_...), and a case that
 * reads the table ($VLU_TOP/docs/UPDATE.md) and checks that its ids and these cases are the same set.
 * Also the phase table that daemon/state.c shares.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "basics.h"
#include "update-decide.h"
#include "update-proc.h"

/* The facts of a running update with everyone alive and the default policy, then what the case changes: a
 * later designated initializer overrides an earlier one (C11 6.7.9), so the case names only what differs. */
#pragma GCC diagnostic ignored "-Woverride-init"
#define FACTS(t, tr, r, ph, ...)                                                                                       \
	{                                                                                                              \
		.trigger = (t), .transfer = (tr), .route = (r), .phase = (ph), .old_alive = true, .old_conn = true,    \
		.inst_on_old_conn = true, .saved = (ph) >= PH_RESET, .prev_binary = true,                              \
		.pol_restart_previous = true, .pol_kill_failed_successor = true, __VA_ARGS__                           \
	}

/* update_decide(f) must be want; a failure names the case by its line, trigger, mode, path and phase */
static void check_facts(const struct rb_facts *f, enum rb_action want, int line)
{
	enum rb_action got = update_decide(f);

	if (got != want)
		fail_msg("%s:%d: %s, %s mode, path %c, phase %s: %s, want %s", __FILE__, line,
			 update_trigger_name(f->trigger), f->transfer ? "transfer" : "exec", f->route,
			 update_phases[f->phase].name, update_action_name(got), update_action_name(want));
}

#define assert_action(f, want) check_facts(&(f), (want), __LINE__)

/* a case of a table: on each path of routes, the facts FACTS(t, tr, path, ph, ...) decide want */
struct row {
	int line;
	const char *routes;
	enum rb_action want;
	struct rb_facts f;
};

#define ROW(routes, want, t, tr, ph, ...) { __LINE__, (routes), (want), FACTS(t, tr, 0, ph, __VA_ARGS__) }

/* O's process exited and its connection is closed (exec mode: the old image is gone) */
#define O_GONE .old_alive = false, .old_conn = false

static void check_rows(const struct row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++)
		for (const char *r = rows[i].routes; *r; r++) {
			struct rb_facts f = rows[i].f;

			f.route = *r;
			check_facts(&f, rows[i].want, rows[i].line);
		}
}

#define CHECK_ROWS(rows) check_rows((rows), ELEMENTSOF(rows))

/* R1: O does not save in time, aborts, reports a save error, one of D's own steps fails, exec fails */
static void R1_save_failed_resume(void **state)
{
	static const enum phase phases[] = { PH_SUSPEND, PH_SAVE, PH_RESET, PH_SPAWN };
	static const struct row rows[] = {
		/* exec mode, O's exec failed: it is still on its connection and calls update.abort */
		ROW("B", RB_RESUME, RBT_FAILED, false, PH_EXEC),
		/* transfer mode, A/B: O's update.armed with an error (phase claim, N spawned or named, no claim
		 * yet) */
		ROW("AB", RB_RESUME, RBT_FAILED, true, PH_CLAIM, .saved = true, .new_alive = true),
		ROW("AB", RB_RESUME, RBT_FAILED, true, PH_CLAIM, .saved = true, .new_alive = true, .spawned = true),
	};

	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(phases); i++)
		for (int tr = 0; tr < 2; tr++)
			for (const char *r = "ABC"; *r; r++) {
				struct rb_facts f = FACTS(RBT_FAILED, tr, *r, phases[i]);

				assert_action(f, RB_RESUME);
				f.trigger = RBT_DEADLINE; /* O is never killed in phase save */
				assert_action(f, RB_RESUME);
			}
	CHECK_ROWS(rows);
	assert_string_equal(update_action_result(RB_RESUME, false), "rolled-back");
}

/* R2: O dies before saving */
static void R2_old_dies_before_save(void **state)
{
	static const struct row rows[] = {
		/* its connection may still be open: the exit comes first */
		ROW("A", RB_RESUME_ORPHANED, RBT_OLD_EXIT, false, PH_SAVE, .old_alive = false),
		ROW("A", RB_RESUME_ORPHANED, RBT_OLD_EXIT, true, PH_SAVE, .old_alive = false),
		ROW("A", RB_RESUME_ORPHANED, RBT_OLD_EXIT, true, PH_SAVE, O_GONE),
	};

	(void)state;
	CHECK_ROWS(rows);
	assert_string_equal(update_action_result(RB_RESUME_ORPHANED, false), "failed");
}

/* R3: exec mode, the old image is gone: the previous binary; without it every fd kept */
static void R3_exec_restart_previous(void **state)
{
	static const struct row rows[] = {
		/* O died after saving, before its exec */
		ROW("A", RB_RESTART_PREVIOUS, RBT_OLD_EXIT, false, PH_EXEC, .old_alive = false),
		/* the new image never claims (its old connection closed at exec) */
		ROW("C", RB_RESTART_PREVIOUS, RBT_DEADLINE, false, PH_EXEC, O_GONE),
		/* N died after its claim (restored or not) */
		ROW("B", RB_RESTART_PREVIOUS, RBT_NEW_EXIT, false, PH_RESTORE, O_GONE),
		/* ... but not while the successor still runs with the fds */
		ROW("B", RB_KEEP, RBT_FAILED, false, PH_RESTORE, O_GONE, .new_alive = true),
		/* policy off, nothing recorded to restart, or the restart failed: every fd kept */
		ROW("B", RB_KEEP, RBT_FAILED, false, PH_RESTORE, O_GONE, .pol_restart_previous = false),
		ROW("B", RB_KEEP, RBT_FAILED, false, PH_RESTORE, O_GONE, .prev_binary = false),
		ROW("B", RB_KEEP, RBT_FAILED, false, PH_RESTORE, O_GONE, .restart_failed = true),
		/* before any claim: the devices stay suspended */
		ROW("A", RB_KEEP_SUSPENDED, RBT_DEADLINE, false, PH_EXEC, O_GONE, .restart_failed = true),
		/* the restarted binary fails in turn: no second restart */
		ROW("A", RB_KEEP_SUSPENDED, RBT_NEW_EXIT, false, PH_CLAIM, O_GONE, .restarted = true),
		/* O's exit does not matter once the previous binary runs */
		ROW("A", RB_IGNORE, RBT_OLD_EXIT, false, PH_CLAIM, O_GONE, .restarted = true),
	};

	(void)state;
	CHECK_ROWS(rows);
	assert_string_equal(update_action_result(RB_KEEP, false), "failed");
	assert_null(update_action_result(RB_RESTART_PREVIOUS, false));
}

/* R4: a deadline with a late process that holds (or is about to take) the fds: killed first */
static void R4_deadline_kill(void **state)
{
	static const struct row rows[] = {
		/* exec mode: the exec'ed image in phase exec (its old connection gone) or restore (after the
		 * claim the same process is watched as N) */
		ROW("A", RB_KILL_OLD, RBT_DEADLINE, false, PH_EXEC, .old_conn = false),
		ROW("A", RB_KILL_OLD, RBT_DEADLINE, false, PH_RESTORE, .old_conn = false, .new_alive = true),
		/* its exit is the R3 row; a signal that failed: the rollback now (alive: no restart while it
		 * holds the fds) */
		ROW("A", RB_KEEP, RBT_DEADLINE, false, PH_RESTORE, .old_conn = false, .new_alive = true,
		    .kill_failed = true),
		/* transfer mode: N after its claim, a spawned N that never claims, the restarted previous binary */
		ROW("A", RB_KILL_NEW, RBT_DEADLINE, true, PH_RESTORE, .new_alive = true),
		ROW("C", RB_KILL_NEW, RBT_DEADLINE, true, PH_CLAIM, .new_alive = true, .spawned = true),
		ROW("A", RB_KILL_NEW, RBT_DEADLINE, false, PH_CLAIM, O_GONE, .restarted = true, .new_alive = true),
		/* never an operator-named successor before its claim: it holds nothing */
		ROW("A", RB_RESUME, RBT_DEADLINE, true, PH_CLAIM, .new_alive = true),
		/* never O while it takes a reopened device back */
		ROW("C", RB_KEEP_RETAKE, RBT_DEADLINE, true, PH_ROLLBACK, .retake = true, .new_alive = true),
		/* one kill at a time: its exit rolls back, the guard deadline rolls back now */
		ROW("A", RB_RECLAIM, RBT_DEADLINE, true, PH_RESTORE, .new_alive = true, .kill_pending = true),
		/* policy off: the phase's row without the kill */
		ROW("A", RB_RECLAIM, RBT_DEADLINE, true, PH_RESTORE, .new_alive = true,
		    .pol_kill_failed_successor = false),
		ROW("A", RB_KEEP, RBT_DEADLINE, false, PH_RESTORE, .old_conn = false, .new_alive = true,
		    .pol_kill_failed_successor = false),
	};

	(void)state;
	CHECK_ROWS(rows);
}

/* R5: the verification failed at N's update.ready */
static void R5_verify_failed(void **state)
{
	static const struct row rows[] = {
		/* transfer mode, O alive: N is killed, O takes back at its exit (R8, R9) */
		ROW("ABC", RB_KILL_NEW, RBT_VERIFY, true, PH_VERIFY, .new_alive = true, .old_conn_free = true),
		/* the policy off: A/B back to O at once, C keeps every fd (N holds the reopened device) */
		ROW("AB", RB_RECLAIM, RBT_VERIFY, true, PH_VERIFY, .new_alive = true, .old_conn_free = true,
		    .pol_kill_failed_successor = false),
		ROW("C", RB_KEEP, RBT_VERIFY, true, PH_VERIFY, .new_alive = true, .old_conn_free = true,
		    .pol_kill_failed_successor = false),
		/* exec mode, or O gone: failed as it stands, N not killed */
		ROW("C", RB_FAIL, RBT_VERIFY, false, PH_VERIFY, .new_alive = true, .old_conn = false),
		ROW("A", RB_FAIL, RBT_VERIFY, true, PH_VERIFY, .new_alive = true, .old_alive = false),
		/* exec mode, the new image died right after its update.ready (the verification read a dead
		 * process, its exit not seen yet): as its exit, R3 (the previous binary); path A after D's RESUME
		 * stays R5; no restart policy: every fd kept */
		ROW("BC", RB_RESTART_PREVIOUS, RBT_VERIFY, false, PH_VERIFY, O_GONE),
		ROW("A", RB_RESTART_PREVIOUS, RBT_VERIFY, false, PH_RESTORE, O_GONE, .vdpa = true, .iommufd = true),
		ROW("A", RB_RESTART_PREVIOUS, RBT_VERIFY, false, PH_VERIFY, O_GONE, .iommufd = true),
		ROW("A", RB_FAIL, RBT_VERIFY, false, PH_VERIFY, O_GONE, .vdpa = true),
		ROW("BC", RB_KEEP, RBT_VERIFY, false, PH_VERIFY, O_GONE, .pol_restart_previous = false),
		ROW("BC", RB_KEEP, RBT_VERIFY, false, PH_VERIFY, O_GONE, .restart_failed = true),
		/* ... and once the previous binary runs, its own death at its verification is the end */
		ROW("BC", RB_KEEP, RBT_VERIFY, false, PH_VERIFY, O_GONE, .restarted = true),
	};

	(void)state;
	CHECK_ROWS(rows);
	assert_string_equal(update_action_result(RB_FAIL, false), "failed");
}

/* R6: transfer mode, O dies after saving: the update goes on; N failing then finds O gone */
static void R6_transfer_old_dies_after_save(void **state)
{
	static const struct row rows[] = {
		ROW("ABC", RB_CONTINUE, RBT_OLD_EXIT, true, PH_CLAIM, .old_alive = false, .new_alive = true),
		/* O's exit after N's claim does not matter either */
		ROW("ABC", RB_IGNORE, RBT_OLD_EXIT, true, PH_RESTORE, .old_alive = false, .new_alive = true),
		/* N then fails before its claim: RESUME, failed */
		ROW("ABC", RB_RESUME_ORPHANED, RBT_NEW_EXIT, true, PH_CLAIM, O_GONE),
		/* ... or after it: every fd kept */
		ROW("ABC", RB_KEEP, RBT_NEW_EXIT, true, PH_RESTORE, O_GONE),
		/* not before O saved */
		ROW("A", RB_RESUME_ORPHANED, RBT_OLD_EXIT, true, PH_SAVE, .old_alive = false, .saved = false),
	};

	(void)state;
	CHECK_ROWS(rows);
}

/* R7: transfer mode, N dies or times out before its claim: O (still the owner) takes back */
static void R7_transfer_new_dies_before_claim(void **state)
{
	static const struct row rows[] = {
		ROW("ABC", RB_RESUME, RBT_NEW_EXIT, true, PH_CLAIM),
		ROW("ABC", RB_RESUME, RBT_DEADLINE, true, PH_CLAIM),
		ROW("ABC", RB_RESUME, RBT_NEW_EXIT, true, PH_SPAWN),
		/* path C, the claim released and reopened the device, the claimant's connection was gone before
		 * the hand-over: O takes the fresh fds */
		ROW("C", RB_RETAKE_REOPENED, RBT_FAILED, true, PH_CLAIM, .released = true),
		/* ... unless the reopen lost a device */
		ROW("C", RB_RESUME, RBT_FAILED, true, PH_CLAIM, .released = true, .lost = true),
	};

	(void)state;
	CHECK_ROWS(rows);
	assert_string_equal(update_action_result(RB_RESUME, true), "failed");
}

/* R8: transfer mode, paths A/B, N dies after its claim: the instance returns to O */
static void R8_transfer_ab_reclaim(void **state)
{
	static const struct row rows[] = {
		ROW("AB", RB_RECLAIM, RBT_NEW_EXIT, true, PH_RESTORE, .old_conn_free = true, .inst_on_old_conn = false),
		/* N's restore error */
		ROW("AB", RB_RECLAIM, RBT_FAILED, true, PH_RESTORE, .old_conn_free = true, .inst_on_old_conn = false),
		/* O gone too */
		ROW("AB", RB_KEEP, RBT_FAILED, true, PH_RESTORE, .old_conn_free = true, .inst_on_old_conn = false,
		    .old_alive = false),
	};

	(void)state;
	CHECK_ROWS(rows);
	assert_string_equal(update_action_result(RB_RECLAIM, false), "rolled-back");
}

/* R9: transfer mode, path C, N dies after its claim: release, reopen, O takes the fresh fds */
static void R9_transfer_c_retake(void **state)
{
	static const struct row rows[] = {
		ROW("C", RB_RETAKE, RBT_NEW_EXIT, true, PH_RESTORE, .old_conn_free = true, .inst_on_old_conn = false,
		    .released = true),
		/* N still runs (its copy keeps the node busy), or O gone: every fd kept */
		ROW("C", RB_KEEP, RBT_FAILED, true, PH_RESTORE, .old_conn_free = true, .inst_on_old_conn = false,
		    .released = true, .new_alive = true),
		ROW("C", RB_KEEP, RBT_FAILED, true, PH_RESTORE, .old_conn_free = true, .inst_on_old_conn = false,
		    .released = true, .old_alive = false),
		/* while O takes it back: O's death or the deadline ends it, every fd kept; N's exit is ignored */
		ROW("C", RB_KEEP_RETAKE, RBT_OLD_EXIT, true, PH_ROLLBACK, .retake = true, .old_alive = false),
		ROW("C", RB_KEEP_RETAKE, RBT_DEADLINE, true, PH_ROLLBACK, .retake = true, .old_alive = false),
		ROW("C", RB_IGNORE, RBT_NEW_EXIT, true, PH_ROLLBACK, .retake = true, .old_alive = false),
	};

	(void)state;
	CHECK_ROWS(rows);
	assert_null(update_action_result(RB_RETAKE, false));
	assert_string_equal(update_action_result(RB_KEEP_RETAKE, false), "failed");
}

/* R10: the instance is released, or the daemon stops: RESUME, failed, whatever the phase */
static void R10_released_or_stopping(void **state)
{
	(void)state;
	for (int ph = PH_SUSPEND; ph < PH_DONE; ph++)
		for (int tr = 0; tr < 2; tr++) {
			struct rb_facts f = FACTS(RBT_STOP, tr, 'C', (enum phase)ph, .retake = ph == PH_ROLLBACK,
						  .restarted = !tr && ph == PH_CLAIM);

			assert_action(f, RB_STOP);
		}
	assert_string_equal(update_action_result(RB_STOP, false), "failed");
}

/* path C, the claimant dies while the accepted claim waits for the closer (D's old device copies being
 * closed): the exit waits for the close, whose completion reopens the device and rolls back (the chaos soak,
 * seed 5, kill 35: exec C, the claimed image killed 10 ms into the claim, ended with the device lost) */
static void claimant_exit_waits_for_release(void **state)
{
	static const struct row rows[] = {
		/* exec mode: the claimant is O's pid */
		ROW("C", RB_IGNORE, RBT_OLD_EXIT, false, PH_CLAIM, O_GONE, .claim_pending = true),
		/* then the completion, the claimant gone: the previous binary takes the reopened device */
		ROW("C", RB_RESTART_PREVIOUS, RBT_FAILED, false, PH_CLAIM, O_GONE, .released = true),
		/* without the pending close, as before: the exit decides now */
		ROW("C", RB_RESTART_PREVIOUS, RBT_OLD_EXIT, false, PH_CLAIM, O_GONE),
		/* transfer mode: the claimant N */
		ROW("C", RB_IGNORE, RBT_NEW_EXIT, true, PH_CLAIM, .spawned = true, .claim_pending = true),
		ROW("C", RB_RETAKE_REOPENED, RBT_FAILED, true, PH_CLAIM, .spawned = true, .released = true),
		/* O's exit in transfer mode goes on as before (N may still claim) */
		ROW("C", RB_CONTINUE, RBT_OLD_EXIT, true, PH_CLAIM, .claim_pending = true, .old_alive = false),
		/* a deadline does not wait for the close (as before) */
		ROW("C", RB_RESTART_PREVIOUS, RBT_DEADLINE, false, PH_CLAIM, .old_conn = false, .claim_pending = true,
		    .pol_kill_failed_successor = false),
	};

	(void)state;
	CHECK_ROWS(rows);
}

/* R11: path C, a device lost: no restart of the previous binary, failed */
static void R11_device_lost(void **state)
{
	static const struct row rows[] = {
		/* exec mode: the claim's release or reopen failed (the engine moves to phase restore) */
		ROW("C", RB_KEEP, RBT_FAILED, false, PH_RESTORE, .old_conn = false, .lost = true, .released = true),
		ROW("C", RB_KEEP, RBT_FAILED, false, PH_RESTORE, .old_conn = false, .lost = true, .released = true,
		    .old_alive = false),
		/* transfer mode */
		ROW("C", RB_KEEP, RBT_FAILED, true, PH_RESTORE, .lost = true, .released = true, .old_conn_free = true),
	};

	(void)state;
	CHECK_ROWS(rows);
	assert_string_equal(update_action_result(RB_RESUME, true), "failed");
}

/* O is told the update's end on its own connection whenever it is O's and O runs, whatever the result:
 * a "failed" RB_RESUME (transfer mode, path C, the claim's reopen lost a device) leaves O suspended as a
 * "rolled-back" one does, and an O subscribed to other events, or to none, must hear it all the same */
static void old_told_whatever_result(void **state)
{
	struct rb_facts lost = FACTS(RBT_FAILED, true, 'C', PH_CLAIM, .released = true, .lost = true);
	struct rb_facts back = FACTS(RBT_NEW_EXIT, true, 'A', PH_CLAIM);
	/* transfer mode, N has the instance on its own connection: O, alive, waits for update.completed */
	struct rb_facts done = FACTS(RBT_FAILED, true, 'B', PH_VERIFY, .inst_on_old_conn = false);
	/* exec mode before the exec: the one connection is O's */
	struct rb_facts exec_save = FACTS(RBT_FAILED, false, 'A', PH_SAVE);
	/* exec mode, the connection kept across the exec (rb_facts(): not O's any more), or O gone */
	struct rb_facts exec_kept = FACTS(RBT_DEADLINE, false, 'A', PH_EXEC, .old_conn = false);
	struct rb_facts gone = FACTS(RBT_NEW_EXIT, true, 'A', PH_RESTORE, O_GONE);

	(void)state;
	assert_action(lost, RB_RESUME);
	assert_string_equal(update_action_result(update_decide(&lost), lost.lost), "failed");
	assert_true(update_tells_old(&lost));
	assert_action(back, RB_RESUME);
	assert_string_equal(update_action_result(update_decide(&back), back.lost), "rolled-back");
	assert_true(update_tells_old(&back));
	assert_true(update_tells_old(&done));
	assert_true(update_tells_old(&exec_save));
	assert_false(update_tells_old(&exec_kept));
	assert_false(update_tells_old(&gone));
	/* O's process alive, its connection closed (or the reverse): nobody to tell directly */
	gone.old_alive = true;
	assert_false(update_tells_old(&gone));
	gone.old_alive = false;
	gone.old_conn = true;
	assert_false(update_tells_old(&gone));
}

/* exec mode, the new image's update.ready found a failed verification (it runs, as O's pid): with
 * .device_state = true, an undeclared device-state difference */
#define EXEC_READY(routes, want, ...)                                                                                  \
	ROW(routes, want, RBT_VERIFY, false, PH_VERIFY, .old_conn = false, .new_alive = true, __VA_ARGS__)

/* R12: the verification failed on the device's state (a difference the successor did not declare) */
static void R12_device_state_differs(void **state)
{
	static const struct row rows[] = {
		/* exec mode, B and C: the successor (O's pid) is killed; at its exit the previous binary (R3) */
		EXEC_READY("BC", RB_KILL_OLD, .device_state = true),
		EXEC_READY("BC", RB_RESTART_PREVIOUS, .device_state = true, .trigger = RBT_OLD_EXIT,
			   .old_alive = false, .new_alive = false, .kill_pending = true),
		/* without a way back, failed as it stands (R5): no restart policy, no kill policy, the kill
		 * failed, the restarted binary failed in turn, a device lost, no previous binary */
		EXEC_READY("BC", RB_FAIL, .device_state = true, .pol_restart_previous = false),
		EXEC_READY("BC", RB_FAIL, .device_state = true, .pol_kill_failed_successor = false),
		EXEC_READY("BC", RB_FAIL, .device_state = true, .kill_failed = true),
		EXEC_READY("BC", RB_FAIL, .device_state = true, .restarted = true),
		EXEC_READY("BC", RB_FAIL, .device_state = true, .lost = true),
		EXEC_READY("BC", RB_FAIL, .device_state = true, .prev_binary = false),
		/* exec mode, path A (nothing was reset: the device runs under the successor): as R5 */
		EXEC_READY("A", RB_FAIL, .device_state = true),
		/* transfer mode: as R5, N killed and O takes back at its exit (R8 on A/B, R9 on C) */
		ROW("ABC", RB_KILL_NEW, RBT_VERIFY, true, PH_VERIFY, .device_state = true, .new_alive = true,
		    .old_conn_free = true),
		ROW("AB", RB_RECLAIM, RBT_NEW_EXIT, true, PH_VERIFY, .device_state = true, .old_conn_free = true,
		    .kill_pending = true),
		ROW("C", RB_RETAKE, RBT_NEW_EXIT, true, PH_VERIFY, .device_state = true, .old_conn_free = true,
		    .kill_pending = true),
	};

	(void)state;
	CHECK_ROWS(rows);
}

/* R13: exec mode, an iommufd update (docs/IOMMUFD.md): any failed verification (the successor did not
 * report CHANGE_PROCESS, or VmPin did not move) kills the claimed image and restarts the previous binary,
 * which takes the charge with its own CHANGE_PROCESS; path A's exec-mode "as R5" does not apply */
static void R13_iommufd_verify_failed(void **state)
{
	static const struct row rows[] = {
		EXEC_READY("A", RB_KILL_OLD, .iommufd = true),
		/* its exit (seen on the claimed image's pidfd, watched as N since the claim): the previous binary */
		EXEC_READY("A", RB_RESTART_PREVIOUS, .iommufd = true, .trigger = RBT_NEW_EXIT, .old_alive = false,
			   .new_alive = false, .kill_pending = true),
		/* the claimed image died by itself after the claim, before its ready: the previous binary (R3) */
		ROW("A", RB_RESTART_PREVIOUS, RBT_NEW_EXIT, false, PH_RESTORE, .iommufd = true, .old_conn = false,
		    .old_alive = false),
		/* without a way back (the restarted binary failed in turn, no policy, no previous binary): as R5 */
		EXEC_READY("A", RB_FAIL, .iommufd = true, .restarted = true),
		EXEC_READY("A", RB_FAIL, .iommufd = true, .pol_restart_previous = false),
		EXEC_READY("A", RB_FAIL, .iommufd = true, .prev_binary = false),
		/* without iommufd, exec mode path A stays as R5 */
		EXEC_READY("A", RB_FAIL, .iommufd = false),
	};

	(void)state;
	CHECK_ROWS(rows);
}

/* A mixed instance (docs/IOMMUFD.md "Mixed instances"): the vhost-vdpa devices' path decides the row, the
 * iommufd part only adds what the taker does (its CHANGE_PROCESS, verified by VmPin): transfer mode A/B
 * after the claim reclaims (R8: O re-owns and calls CHANGE_PROCESS), C retakes (R9: the reopened device
 * and CHANGE_PROCESS), before the claim resumes (R7: nothing of the iommufd moved) */
static void R8_R9_mixed_transfer(void **state)
{
	static const struct row rows[] = {
		ROW("AB", RB_RECLAIM, RBT_NEW_EXIT, true, PH_RESTORE, .iommufd = true, .vdpa = true,
		    .old_conn_free = true, .inst_on_old_conn = false),
		ROW("C", RB_RETAKE, RBT_NEW_EXIT, true, PH_RESTORE, .iommufd = true, .vdpa = true,
		    .old_conn_free = true, .inst_on_old_conn = false, .released = true),
		/* a failed verification (VmPin of both shares, an iommufd not moved, DRIVER_OK): N is killed
		 * first, then its exit is the row above */
		ROW("AB", RB_KILL_NEW, RBT_VERIFY, true, PH_RESTORE, .iommufd = true, .vdpa = true,
		    .old_conn_free = true, .inst_on_old_conn = false, .new_alive = true),
		ROW("C", RB_KILL_NEW, RBT_VERIFY, true, PH_RESTORE, .iommufd = true, .vdpa = true,
		    .old_conn_free = true, .inst_on_old_conn = false, .released = true, .new_alive = true),
		/* before the claim: nothing moved, D RESUMEs what it suspended, O still owns all of it */
		ROW("ABC", RB_RESUME, RBT_NEW_EXIT, true, PH_CLAIM, .iommufd = true, .vdpa = true, .spawned = true),
	};

	(void)state;
	CHECK_ROWS(rows);
}

/* R13 for a mixed instance in exec mode: a failed verification (the vhost-vdpa device's DRIVER_OK or
 * state, an iommufd not moved, VmPin of both shares) kills the claimed image (the iommufd charge needs a
 * claimant's CHANGE_PROCESS), and the restarted previous binary takes both back.  Path A: only what
 * failed before D's RESUME (the charge, verified first, phase restore); after it the vhost-vdpa devices
 * ran under N and the saved state no longer describes them: as R5 */
static void R13_mixed_exec(void **state)
{
	static const struct row rows[] = {
		EXEC_READY("BC", RB_KILL_OLD, .iommufd = true, .vdpa = true),
		EXEC_READY("BC", RB_RESTART_PREVIOUS, .iommufd = true, .vdpa = true, .trigger = RBT_NEW_EXIT,
			   .old_alive = false, .new_alive = false, .kill_pending = true),
		/* path A: the charge is verified before the RESUME */
		EXEC_READY("A", RB_KILL_OLD, .iommufd = true, .vdpa = true, .phase = PH_RESTORE),
		EXEC_READY("A", RB_RESTART_PREVIOUS, .iommufd = true, .vdpa = true, .phase = PH_RESTORE,
			   .trigger = RBT_NEW_EXIT, .old_alive = false, .new_alive = false, .kill_pending = true),
		/* path A after the RESUME (DRIVER_OK or the device state failed): as R5, N runs on with
		 * everything */
		EXEC_READY("A", RB_FAIL, .iommufd = true, .vdpa = true, .device_state = true),
		EXEC_READY("A", RB_FAIL, .iommufd = true, .vdpa = true),
		/* the iommufd-only update is route A without vhost-vdpa devices: restarted at any phase */
		EXEC_READY("A", RB_KILL_OLD, .iommufd = true),
		/* transfer mode, path A, the charge failed before the RESUME: N killed, O reclaims at its exit
		 * (R8) */
		ROW("A", RB_KILL_NEW, RBT_VERIFY, true, PH_RESTORE, .iommufd = true, .vdpa = true, .new_alive = true),
		ROW("A", RB_RECLAIM, RBT_NEW_EXIT, true, PH_RESTORE, .iommufd = true, .vdpa = true,
		    .kill_pending = true),
	};

	(void)state;
	CHECK_ROWS(rows);
}

/* R14: transfer mode, an iommufd-only update in mm accounting mode, after N's claim: a failed verification
 * or the restore deadline stops N (alive: its mm keeps users) instead of killing it, O takes the charge
 * back from that live mm, and N is killed only when that ends (the engine, at the update's end) */
static void R14_iommufd_mm_hold_successor(void **state)
{
#define MM_N .iommufd = true, .iof_mm = true, .new_alive = true, .old_conn_free = true
	static const struct row rows[] = {
		/* the two failures N survives: held, then the take-back (the route of an iommufd-only update is A) */
		ROW("A", RB_HOLD_RECLAIM, RBT_VERIFY, true, PH_VERIFY, MM_N),
		ROW("A", RB_HOLD_RECLAIM, RBT_DEADLINE, true, PH_RESTORE, MM_N),
		/* user accounting: killed first, as before (the uncharge of a dead mm works there) */
		ROW("A", RB_KILL_NEW, RBT_VERIFY, true, PH_VERIFY, MM_N, .iof_mm = false),
		ROW("A", RB_KILL_NEW, RBT_DEADLINE, true, PH_RESTORE, MM_N, .iof_mm = false),
		/* a mixed instance: never held (A/B: O's VHOST_NEW_OWNER needs N's mm dead; C: the release needs
		 * N's copy closed).  The preflight refuses such an update (iof_preflight(), docs/IOMMUFD.md
		 * "Mixed instances"), so these rows are the decision's own guard, at every rollback point after
		 * the claim: killed first, then R8 (A/B) or R9 (C) at its exit */
		ROW("ABC", RB_KILL_NEW, RBT_VERIFY, true, PH_VERIFY, MM_N, .vdpa = true),
		ROW("ABC", RB_KILL_NEW, RBT_VERIFY, true, PH_RESTORE, MM_N, .vdpa = true),
		ROW("ABC", RB_KILL_NEW, RBT_DEADLINE, true, PH_RESTORE, MM_N, .vdpa = true),
		ROW("AB", RB_RECLAIM, RBT_NEW_EXIT, true, PH_VERIFY, MM_N, .vdpa = true, .kill_pending = true,
		    .new_alive = false),
		ROW("C", RB_RETAKE, RBT_NEW_EXIT, true, PH_VERIFY, MM_N, .vdpa = true, .kill_pending = true,
		    .new_alive = false, .released = true),
		/* the hold could not be made (the state write naming N failed: no restart would know of a
		 * stopped N; or the SIGSTOP failed): killed first */
		ROW("A", RB_KILL_NEW, RBT_VERIFY, true, PH_VERIFY, MM_N, .hold_failed = true),
		ROW("A", RB_KILL_NEW, RBT_DEADLINE, true, PH_RESTORE, MM_N, .hold_failed = true),
		/* ... and at its exit O takes back from the dead mm, as in user accounting (R8) */
		ROW("A", RB_RECLAIM, RBT_NEW_EXIT, true, PH_VERIFY, MM_N, .hold_failed = true, .kill_pending = true,
		    .new_alive = false),
		ROW("A", RB_RECLAIM, RBT_NEW_EXIT, true, PH_RESTORE, MM_N, .kill_pending = true, .new_alive = false),
		/* the kill policy off: O takes back at once from the live N, which is neither stopped nor killed */
		ROW("A", RB_RECLAIM, RBT_VERIFY, true, PH_VERIFY, MM_N, .pol_kill_failed_successor = false),
		/* O's connection gone (O alive): nobody takes back; N killed as before, then every fd kept */
		ROW("A", RB_KILL_NEW, RBT_VERIFY, true, PH_VERIFY, MM_N, .old_conn = false),
		ROW("A", RB_KEEP, RBT_NEW_EXIT, true, PH_VERIFY, MM_N, .old_conn = false, .new_alive = false,
		    .kill_pending = true),
		/* O gone: failed as it stands, N not killed (R5) */
		ROW("A", RB_FAIL, RBT_VERIFY, true, PH_VERIFY, MM_N, .old_alive = false, .old_conn = false),
		/* N already dead (it exited on its own): O takes the charge from the dead mm, nothing to hold */
		ROW("A", RB_RECLAIM, RBT_NEW_EXIT, true, PH_RESTORE, MM_N, .new_alive = false),
		ROW("A", RB_RECLAIM, RBT_VERIFY, true, PH_VERIFY, MM_N, .new_alive = false),
		/* N's own restore error: O takes back from the live N (not killed: it reported the failure) */
		ROW("A", RB_RECLAIM, RBT_FAILED, true, PH_RESTORE, MM_N),
		/* before the claim nothing moved: a spawned N that never claimed is killed (R4), then R7 */
		ROW("A", RB_KILL_NEW, RBT_DEADLINE, true, PH_CLAIM, MM_N, .spawned = true),
		/* held, during O's take-back (phase rollback, retake): N's exit does not matter; O's exit, the
		 * deadline: failed, every fd kept (the engine kills N at the end); the daemon stopping: stop */
		ROW("A", RB_IGNORE, RBT_NEW_EXIT, true, PH_ROLLBACK, MM_N, .retake = true, .new_held = true,
		    .new_alive = false),
		ROW("A", RB_KEEP_RETAKE, RBT_OLD_EXIT, true, PH_ROLLBACK, MM_N, .retake = true, .new_held = true,
		    .old_alive = false),
		ROW("A", RB_KEEP_RETAKE, RBT_DEADLINE, true, PH_ROLLBACK, MM_N, .retake = true, .new_held = true),
		ROW("A", RB_STOP, RBT_STOP, true, PH_ROLLBACK, MM_N, .retake = true, .new_held = true),
		/* the stop awaited before O is told (phase rollback already): N gone meanwhile is ignored (the
		 * wait sees it and tells O with nothing held); O's exit or the deadline end it failed, and the
		 * engine kills N at the end (or, vlud stopping with the fd store, leaves it stopped for the next
		 * vlud) */
		ROW("A", RB_IGNORE, RBT_NEW_EXIT, true, PH_ROLLBACK, MM_N, .retake = true, .new_held = true,
		    .new_alive = false),
		ROW("A", RB_KEEP_RETAKE, RBT_FAILED, true, PH_ROLLBACK, MM_N, .retake = true, .new_held = true),
		/* never held twice */
		ROW("A", RB_KILL_NEW, RBT_VERIFY, true, PH_VERIFY, MM_N, .new_held = true),
	};
#undef MM_N

	(void)state;
	CHECK_ROWS(rows);
	assert_string_equal(update_action_result(RB_HOLD_RECLAIM, false), "rolled-back");
	assert_string_equal(update_action_name(RB_HOLD_RECLAIM), "hold-reclaim");
}

/* the phase table: every phase named, the names daemon/state.c accepts */
static void phase_table(void **state)
{
	(void)state;
	for (int i = 0; i < PH_COUNT; i++) {
		assert_non_null(update_phases[i].name);
		assert_int_equal(update_phase_by_name(update_phases[i].name), i);
	}
	assert_int_equal(update_phase_by_name("claim"), PH_CLAIM);
	assert_int_equal(update_phase_by_name("nonsense"), -1);
	/* the permits: who may send what in which phase */
	for (int i = 0; i < PH_COUNT; i++) {
		assert_int_equal(update_phase_permits((enum phase)i, EXPECT_SAVED, PARTY_OLD), i == PH_SAVE);
		assert_int_equal(update_phase_permits((enum phase)i, EXPECT_CLAIM, PARTY_NEW),
				 i == PH_EXEC || i == PH_CLAIM);
		assert_int_equal(update_phase_permits((enum phase)i, EXPECT_READY, PARTY_NEW), i == PH_RESTORE);
		assert_int_equal(update_phase_permits((enum phase)i, EXPECT_READY, PARTY_OLD), i == PH_ROLLBACK);
		/* transfer mode A/B: O arms the devices for the successor in phase claim, before its claim */
		assert_int_equal(update_phase_permits((enum phase)i, EXPECT_ARMED, PARTY_OLD), i == PH_CLAIM);
		assert_false(update_phase_permits((enum phase)i, EXPECT_ARMED, PARTY_NEW));
		assert_false(update_phase_permits((enum phase)i, EXPECT_CLAIM, PARTY_OLD));
		assert_false(update_phase_permits((enum phase)i, EXPECT_NOTHING, PARTY_NONE));
	}
	assert_int_equal(update_phases[PH_CLAIM].deadline, DL_CLAIM);
}

/* field 22 of /proc/PID/stat (a reattach reservation's process identity, docs/UPDATE.md) */
static void stat_starttime(void **state)
{
	/* the tail of a real line: fields 3..21, starttime 9876543, then the rest */
	#define TAIL " S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 9876543 100 200 300\n"
	static const struct {
		const char *text;
		int r;
		unsigned long long v;
	} cases[] = {
		{ "42 (sleep)" TAIL, 0, 9876543 },
		/* the command name is the process's to choose: blanks, parentheses, digits */
		{ "42 (a) b (c) 1 2)" TAIL, 0, 9876543 },
		{ "42 ()" TAIL, 0, 9876543 },
		{ "42 ( ) ) )" TAIL, 0, 9876543 },
		{ "42 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 0 1\n", 0, 0 },
		{ "42 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 18446744073709551614 1", 0,
		  18446744073709551614ULL },
		/* not such a line */
		{ "", -EINVAL, 0 },
		{ "42 sleep" TAIL, -EINVAL, 0 },
		{ "42 (sleep" TAIL, -EINVAL, 0 },
		{ "42 sleep)" TAIL, -EINVAL, 0 },
		{ "42 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 9876543\n", -EINVAL, 0 }, /* nothing after */
		{ "42 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 9876543", -EINVAL, 0 },   /* cut */
		{ "42 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18", -EINVAL, 0 },
		{ "42 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 ", -EINVAL, 0 },
		{ "42 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 12a 1", -EINVAL, 0 },
		{ "42 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 -1 1", -EINVAL, 0 },
		{ "42 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 99999999999999999999 1", -EINVAL, 0 },
		{ "42 (x)  S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 9 1", -EINVAL, 0 }, /* an empty field */
		{ "42 (x)S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 9 1", -EINVAL, 0 },
	};
	char buf[1024];
	unsigned long long v, u;
	FILE *f;
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r;

		v = 7;
		r = update_stat_starttime(cases[i].text, strlen(cases[i].text), &v);
		if (r != cases[i].r || (r == 0 && v != cases[i].v) || (r < 0 && v != 7))
			fail_msg("case %zu \"%s\": %d, %llu", i, cases[i].text, r, v);
	}
	/* the length is the text's end, not a NUL: a line cut short by len is refused */
	assert_int_equal(update_stat_starttime("42 (x)" TAIL, 10, &v), -EINVAL);
	assert_int_equal(update_stat_starttime(NULL, 0, &v), -EINVAL);
	/* this process's own line, read like vlud reads it: the same value as counted by hand (our name
	 * has no blank or parenthesis) */
	f = fopen("/proc/self/stat", "re");
	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	assert_int_equal(update_stat_starttime(buf, n, &v), 0);
	assert_int_equal(sscanf(strrchr(buf, ')') + 2,
				"%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu", &u),
			 1);
	assert_int_equal(v, u);
	#undef TAIL
}

/* field 3 of /proc/PID/stat, the state letter (R14: the held successor's stop awaited, 'T', and checked at the
 * old VMM's update.ready) */
static void stat_state(void **state)
{
	static const struct {
		const char *text;
		int r;
		char c;
	} cases[] = {
		{ "42 (sleep) T 1 2 3\n", 0, 'T' },
		{ "42 (sleep) S 1 2 3\n", 0, 'S' },
		{ "42 (gdb'd) t 1 2 3\n", 0, 't' },
		/* the name may hold ") X ": the last ')' counts */
		{ "42 (a) T (b) R 1\n", 0, 'R' },
		{ "42 ( ) ) D 1", 0, 'D' },
		/* not such a line */
		{ "", -EINVAL, 0 },
		{ "42 sleep T 1", -EINVAL, 0 },
		{ "42 (x)T 1", -EINVAL, 0 },
		{ "42 (x) T", -EINVAL, 0 },
		{ "42 (x) TT 1", -EINVAL, 0 },
		{ "42 (x)  T 1", -EINVAL, 0 },
		{ "42 (x) 1 1", -EINVAL, 0 },
	};
	char buf[1024], c;
	FILE *f;
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r;

		c = '?';
		r = update_stat_state(cases[i].text, strlen(cases[i].text), &c);
		if (r != cases[i].r || (r == 0 && c != cases[i].c) || (r < 0 && c != '?'))
			fail_msg("case %zu \"%s\": %d, %c", i, cases[i].text, r, c);
	}
	assert_int_equal(update_stat_state("42 (x) T 1", 8, &c), -EINVAL); /* cut short by len */
	assert_int_equal(update_stat_state(NULL, 0, &c), -EINVAL);
	/* this process runs while it reads its own line */
	f = fopen("/proc/self/stat", "re");
	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	assert_int_equal(update_stat_state(buf, n, &c), 0);
	assert_int_equal(c, 'R');
}

/* R14: what vlud makes of the held successor's /proc entry, at each poll of the stop wait (O is told only once
 * it is stopped; not stopped within the bound: killed first) and at O's update.ready (the verdict's
 * held_successor.process; its counters read only for that very process) */
static void held_successor_look(void **state)
{
	static const struct {
		bool alive;
		int err;
		uint64_t start;
		char st;
		enum held_look want;
	} looks[] = {
		{ true, 0, 77, 'T', HELD_STOPPED },
		{ true, 0, 77, 't', HELD_STOPPED },
		{ true, 0, 77, 'S', HELD_RUNNING },  /* the SIGSTOP not delivered yet, or a SIGCONT since */
		{ true, 0, 77, 'D', HELD_RUNNING },  /* inside a system call that does not end */
		{ true, 0, 77, 'R', HELD_RUNNING },
		{ true, 0, 78, 'T', HELD_OTHER },    /* another start time: not the process D stopped */
		{ false, 0, 77, 'T', HELD_GONE },    /* the pidfd says it exited (a zombie's /proc entry lingers) */
		{ true, -ENOENT, 0, 0, HELD_GONE },
		{ true, -ESRCH, 0, 0, HELD_GONE },
		{ true, -EMFILE, 0, 0, HELD_UNREADABLE },
		{ true, -EINVAL, 0, 0, HELD_UNREADABLE },
	};
	static const struct {
		enum held_look l;
		bool alive;
		int64_t waited;
		enum hold_step want;
	} steps[] = {
		{ HELD_STOPPED, true, 0, HOLD_STEP_TELL },
		{ HELD_STOPPED, true, 999999, HOLD_STEP_TELL },
		{ HELD_RUNNING, true, 0, HOLD_STEP_WAIT },
		{ HELD_RUNNING, true, 199999, HOLD_STEP_WAIT },
		{ HELD_RUNNING, true, 200000, HOLD_STEP_KILL },
		{ HELD_UNREADABLE, true, 1000, HOLD_STEP_WAIT },
		{ HELD_UNREADABLE, true, 250000, HOLD_STEP_KILL },
		{ HELD_GONE, false, 0, HOLD_STEP_GONE },
		{ HELD_GONE, false, 999999, HOLD_STEP_GONE },
		{ HELD_OTHER, false, 0, HOLD_STEP_GONE },
		/* the pidfd says alive, /proc says gone or another start time: it is that process, killed */
		{ HELD_GONE, true, 0, HOLD_STEP_KILL },
		{ HELD_OTHER, true, 0, HOLD_STEP_KILL },
	};
	/* a thread group's state from its threads' letters (the leader's alone is not the group's) */
	static const struct {
		const char *letters;
		bool more;
		char want;
	} tasks[] = {
		{ "T", false, 'T' },
		{ "TtT", false, 'T' },
		{ "TD", false, 'D' },	/* the leader stopped, another thread inside an ioctl */
		{ "TTS", false, 'S' },
		{ "ZT", false, 'T' },	/* an exited leader, the rest stopped */
		{ "ZX", false, '?' },	/* nothing stopped (the group is exiting) */
		{ "", false, '?' },
		{ "TT", true, '?' },	/* more threads than read: not known to be stopped */
		{ "T?", false, '?' },	/* a thread's stat unreadable */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(looks) / sizeof(looks[0]); i++)
		if (update_held_look(looks[i].alive, looks[i].err, looks[i].start, looks[i].st, 77) != looks[i].want)
			fail_msg("look %zu: %s, want %s", i,
				 update_held_look_name(update_held_look(looks[i].alive, looks[i].err, looks[i].start,
									 looks[i].st, 77)),
				 update_held_look_name(looks[i].want));
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
		if (update_hold_step(steps[i].l, steps[i].alive, steps[i].waited, 200000) != steps[i].want)
			fail_msg("step %zu: %d, want %d", i,
				 (int)update_hold_step(steps[i].l, steps[i].alive, steps[i].waited, 200000),
				 (int)steps[i].want);
	for (size_t i = 0; i < sizeof(tasks) / sizeof(tasks[0]); i++)
		if (update_tasks_state(tasks[i].letters, strlen(tasks[i].letters), tasks[i].more) != tasks[i].want)
			fail_msg("tasks %zu \"%s\": %c, want %c", i, tasks[i].letters,
				 update_tasks_state(tasks[i].letters, strlen(tasks[i].letters), tasks[i].more), tasks[i].want);
	assert_string_equal(update_held_look_name(HELD_STOPPED), "stopped");
	assert_string_equal(update_held_look_name(HELD_RUNNING), "running");
	assert_string_equal(update_held_look_name(HELD_GONE), "exited");
	assert_string_equal(update_held_look_name(HELD_OTHER), "another process");
	assert_string_equal(update_held_look_name(HELD_UNREADABLE), "unreadable");
}

static void *idle_thread(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

/* the whole thread group's state (upd_pid_stat_all()) for pid, polled until want or 2 s; the last read */
static char group_state(pid_t pid, char want)
{
	uint64_t st = 0;
	char c = '?';

	for (int i = 0; i < 400; i++) {
		if (upd_pid_stat_all(pid, &st, &c) == 0 && c == want)
			break;
		usleep(5000);
	}
	return c;
}

/* R14's stop wait, read from /proc: a child of two threads (the leader and one more, both sleeping).  Running:
 * not stopped; SIGSTOP: every thread 'T'; the leader alone stopped (a ptrace interrupt: the other thread
 * runs on, as one inside a long ioctl would): /proc/PID/stat says 't', the group is not stopped */
static void held_successor_threads(void **state)
{
	int p[2], ws = 0;
	uint64_t st = 0;
	uid_t uid = 0;
	pid_t c;
	char b, l = '?';

	(void)state;
	assert_int_equal(upd_pid_euid(getpid(), &uid), 0);
	assert_int_equal(uid, geteuid());
	assert_int_equal(pipe(p), 0);
	c = fork();
	assert_true(c >= 0);
	if (c == 0) {
		pthread_t t;

		if (pthread_create(&t, NULL, idle_thread, NULL) != 0)
			_exit(1);
		(void)!write(p[1], "x", 1);
		for (;;)
			pause();
	}
	close(p[1]);
	assert_int_equal(read(p[0], &b, 1), 1);
	close(p[0]);
	assert_int_equal(group_state(c, 'S'), 'S');
	kill(c, SIGSTOP);
	assert_int_equal(waitpid(c, &ws, WUNTRACED), c);
	assert_int_equal(group_state(c, 'T'), 'T');
	kill(c, SIGCONT);
	assert_int_equal(waitpid(c, &ws, WCONTINUED), c);
	assert_int_equal(group_state(c, 'S'), 'S');
	if (ptrace(PTRACE_SEIZE, c, NULL, NULL) != 0) {
		int e = errno;

		kill(c, SIGKILL);
		waitpid(c, NULL, 0);
		print_message("# ptrace(PTRACE_SEIZE): %s: the leader-only stop is not checked here\n", strerror(e));
		skip();
	}
	assert_int_equal(ptrace(PTRACE_INTERRUPT, c, NULL, NULL), 0);
	assert_int_equal(waitpid(c, &ws, __WALL), c);
	for (int i = 0; i < 400 && !(upd_pid_stat(c, &st, &l) == 0 && l == 't'); i++)
		usleep(5000);
	assert_int_equal(l, 't');				/* the leader's letter: stopped */
	assert_int_equal(group_state(c, 'S'), 'S');		/* the group's: the other thread sleeps, not stopped */
	kill(c, SIGKILL);
	waitpid(c, NULL, 0);
}

/* who may reattach after a restart of vlud during an update (docs/UPDATE.md "Only the device's owner
 * reattaches"): every phase, with and without a resume, a path-C release and a held successor.  An
 * iommufd-only update has neither a resume nor a release: its rows are those with both false. */
static void restart_heir_rows(void **state)
{
	static const struct {
		enum phase ph;
		bool resume, released;
		enum restart_held held;
		enum restart_heir want;
	} rows[] = {
		/* before the hand-over: the old VMM owns the devices, and holds the iommufd charge */
		{ PH_PREFLIGHT, false, false, RESTART_HELD_NO, HEIR_OLD },
		{ PH_SUSPEND, true, false, RESTART_HELD_NO, HEIR_OLD },
		{ PH_SAVE, false, false, RESTART_HELD_NO, HEIR_OLD },
		{ PH_RESET, false, false, RESTART_HELD_NO, HEIR_OLD },
		{ PH_EXEC, false, false, RESTART_HELD_NO, HEIR_OLD },
		{ PH_SPAWN, false, false, RESTART_HELD_NO, HEIR_OLD },
		{ PH_CLAIM, false, false, RESTART_HELD_NO, HEIR_OLD },
		/* path C: vlud released the device for the claim, its reopen is nobody's */
		{ PH_CLAIM, false, true, RESTART_HELD_NO, HEIR_NONE },
		/* the successor claimed every fd: its devices, and the charge once its CHANGE_PROCESS ran */
		{ PH_RESTORE, false, false, RESTART_HELD_NO, HEIR_NEW },
		{ PH_RESTORE, false, true, RESTART_HELD_NO, HEIR_NEW },
		{ PH_RESUME, false, false, RESTART_HELD_NO, HEIR_NEW },
		{ PH_VERIFY, false, false, RESTART_HELD_NO, HEIR_NEW },
		{ PH_COMMIT, false, false, RESTART_HELD_NO, HEIR_NEW },
		/* the old VMM brings it back */
		{ PH_ROLLBACK, false, false, RESTART_HELD_NO, HEIR_OLD },
		{ PH_ROLLBACK, false, true, RESTART_HELD_NO, HEIR_OLD },
		/* R14: the state names the successor held stopped (written before the phase becomes rollback):
		 * the old VMM takes the charge back, and its reattach ends the hold */
		{ PH_RESTORE, false, false, RESTART_HELD_YES, HEIR_OLD },
		{ PH_VERIFY, false, false, RESTART_HELD_YES, HEIR_OLD },
		{ PH_ROLLBACK, false, false, RESTART_HELD_YES, HEIR_OLD },
		/* the state's held successor member malformed: the successor may be held stopped, nobody would
		 * know to end it, and a reservation to it would last that long: to nobody after the claim */
		{ PH_RESTORE, false, false, RESTART_HELD_UNREADABLE, HEIR_NONE },
		{ PH_COMMIT, false, false, RESTART_HELD_UNREADABLE, HEIR_NONE },
		{ PH_SAVE, false, false, RESTART_HELD_UNREADABLE, HEIR_OLD },
		{ PH_ROLLBACK, false, false, RESTART_HELD_UNREADABLE, HEIR_OLD },
		/* ending: its verdict was not recorded (an older vlud's "done") */
		{ PH_DONE, false, false, RESTART_HELD_NO, HEIR_NONE },
	};

	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(rows); i++) {
		enum restart_heir got = update_restart_heir(rows[i].ph, rows[i].resume, rows[i].released, rows[i].held);

		if (got != rows[i].want)
			fail_msg("row %zu: phase %s, resume %d, released %d, held %d: heir %d, want %d", i,
				 update_phase_name(rows[i].ph), rows[i].resume, rows[i].released, rows[i].held, got,
				 rows[i].want);
	}
}

static void doc_rows_match(void **state);

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(R1_save_failed_resume),
	cmocka_unit_test(R2_old_dies_before_save),
	cmocka_unit_test(R3_exec_restart_previous),
	cmocka_unit_test(R4_deadline_kill),
	cmocka_unit_test(R5_verify_failed),
	cmocka_unit_test(R6_transfer_old_dies_after_save),
	cmocka_unit_test(R7_transfer_new_dies_before_claim),
	cmocka_unit_test(R8_transfer_ab_reclaim),
	cmocka_unit_test(R9_transfer_c_retake),
	cmocka_unit_test(R10_released_or_stopping),
	cmocka_unit_test(R11_device_lost),
	cmocka_unit_test(old_told_whatever_result),
	cmocka_unit_test(claimant_exit_waits_for_release),
	cmocka_unit_test(R12_device_state_differs),
	cmocka_unit_test(R13_iommufd_verify_failed),
	cmocka_unit_test(R8_R9_mixed_transfer),
	cmocka_unit_test(R13_mixed_exec),
	cmocka_unit_test(R14_iommufd_mm_hold_successor),
	cmocka_unit_test(phase_table),
	cmocka_unit_test(stat_starttime),
	cmocka_unit_test(stat_state),
	cmocka_unit_test(held_successor_look),
	cmocka_unit_test(held_successor_threads),
	cmocka_unit_test(restart_heir_rows),
	cmocka_unit_test(doc_rows_match),
};

/* "R12_..." -> 12; 0 when the name is not a row case */
static int case_row(const char *name)
{
	char *end;
	long n;

	if (name[0] != 'R' || name[1] < '1' || name[1] > '9')
		return 0;
	n = strtol(name + 1, &end, 10);
	return *end == '_' && n > 0 && n < 1000 ? (int)n : 0;
}

/* the cells of a table line: its '|' that are not escaped ("\\|") */
static unsigned pipes(const char *line)
{
	unsigned n = 0;

	for (const char *p = line; *p; p++)
		if (*p == '|' && (p == line || p[-1] != '\\'))
			n++;
	return n;
}

/* the rollback table's rows in docs/UPDATE.md and the R cases above are the same set of ids, and every row
 * has the header's cells (a cell too many renders as a column the header does not name) */
static void doc_rows_match(void **state)
{
	const char *top = getenv("VLU_TOP");
	bool in_doc[1000] = { false }, in_test[1000] = { false };
	char path[4096], line[8192];
	bool in_section = false;
	unsigned rows = 0, head = 0;
	FILE *f;

	(void)state;
	if (top) {
		snprintf(path, sizeof(path), "%s/docs/UPDATE.md", top);
	} else {
		/* run by hand: the tree this test was compiled from (the build passes absolute source paths) */
		const char *src = __FILE__, *tail = "/tests/unit/test-update-decide.c";
		size_t n = strlen(src), t = strlen(tail);

		if (src[0] != '/' || n < t || strcmp(src + n - t, tail) != 0)
			fail_msg("VLU_TOP unset and %s is not an absolute source path: set VLU_TOP to the source tree", src);
		snprintf(path, sizeof(path), "%.*s/docs/UPDATE.md", (int)(n - t), src);
	}
	f = fopen(path, "re");
	if (!f)
		fail_msg("%s: cannot open", path);
	while (fgets(line, sizeof(line), f)) {
		int n;

		if (strncmp(line, "## ", 3) == 0) {
			in_section = strncmp(line, "## Rollback", 11) == 0;
			continue;
		}
		if (in_section && strncmp(line, "| id |", 6) == 0)
			head = pipes(line);
		if (!in_section || sscanf(line, "| R%d |", &n) != 1)
			continue;
		if (n <= 0 || n >= 1000 || in_doc[n])
			fail_msg("docs/UPDATE.md: rollback row R%d: out of range or twice", n);
		if (!head)
			fail_msg("docs/UPDATE.md: rollback row R%d before the table's header (| id | ...)", n);
		if (pipes(line) != head)
			fail_msg("docs/UPDATE.md: rollback row R%d has %u cells, the header %u", n, pipes(line) - 1, head - 1);
		in_doc[n] = true;
		rows++;
	}
	fclose(f);
	if (rows == 0)
		fail_msg("docs/UPDATE.md: no rollback table rows (| R<n> | ...) under ## Rollback");
	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
		int n = case_row(tests[i].name);

		if (n)
			in_test[n] = true;
	}
	for (int n = 1; n < 1000; n++) {
		if (in_doc[n] && !in_test[n])
			fail_msg("docs/UPDATE.md rollback row R%d has no test case R%d_...", n, n);
		if (in_test[n] && !in_doc[n])
			fail_msg("test case R%d_... has no row R%d in docs/UPDATE.md's rollback table", n, n);
	}
}

int main(void)
{
	if (!getenv("CMOCKA_MESSAGE_OUTPUT"))
		setenv("CMOCKA_MESSAGE_OUTPUT", "TAP", 1);
	return cmocka_run_group_tests_name("update-decide", tests, NULL, NULL);
}
