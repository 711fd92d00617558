/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * update-int.h - the live-update engine's private header (update.h is the daemon's view of it).
 *
 * The engine, one concern per file:
 *   update-decide.c    the phase table and the rollback decision (pure; update-decide.h)
 *   update.c           struct update's life: the one phase change (upd_set_phase), the failure cause, the
 *                      verdict and the end (finish), status, abort, vmm.mappings, instance gone
 *   update-preflight.c update.start: the refusals, then the suspend and save phases
 *   update-phases.c    the forward phases after save: update.saved, update.claim (path C release and
 *                      reopen), update.ready and the verification
 *   update-rollback.c  the facts, the decision executed: restart the previous binary, kill, reclaim,
 *                      retake (path C), the deadline and exit watchers
 *   update-restore.c   persistence and recovery after a restart of vlud
 *   update-held.c      a successor held stopped (R14) that outlives its update: at vlud's stop, after a restart
 *
 * Fd ownership: D's device fds stay in the instance's held table throughout (path C: replaced by the
 * reopened ones at claim, and again when a transfer-mode rollback brings the device back to O; between
 * the two the old ones belong to the closer); the state memfd is owned by struct update; pidfds are
 * owned by struct update (a deferred claim's too).
 */
#ifndef VLUD_UPDATE_INT_H
#define VLUD_UPDATE_INT_H

#include <stdint.h>
#include <sys/types.h>
#include <json-c/json.h>

#include "closer.h"
#include "commands.h"
#include "iommufd-decide.h"
#include "state.h"
#include "update-decide.h"
#include "update-proc.h"
#include "vlu-proto.h"
#include "vlud.h"

#define MAX_MAPS 64
/* vmm.mappings: iova, size, offset and their ends are bounded (no arithmetic on them can overflow) */
#define MAP_LIMIT (1ULL << 48)
#define MAX_DEVS 16
#define STATE_FD_NAME "update:state"

#ifndef VIRTIO_CONFIG_S_DRIVER_OK
#define VIRTIO_CONFIG_S_DRIVER_OK 4
#endif

enum mode { MODE_EXEC, MODE_TRANSFER };

/* why the update (or the stage after it) failed: the first failure wins (upd_set_failure()) */
enum cause {
	CAUSE_NONE,
	CAUSE_SUSPEND,	     /* SUSPEND of a device failed */
	CAUSE_SAVE,	     /* O reported that it could not save */
	CAUSE_ARM,	     /* transfer mode A/B: O reported that it could not arm its devices for the successor */
	CAUSE_RESET,	     /* path B: SET_STATUS 0 failed */
	CAUSE_SPAWN,	     /* the successor could not be spawned */
	CAUSE_TIMEOUT,	     /* a phase's deadline passed (and the late process was killed: .killed) */
	CAUSE_OLD_EXIT,	     /* O's process exited */
	CAUSE_NEW_EXIT,	     /* the successor's process exited */
	CAUSE_ABORT,	     /* update.abort */
	CAUSE_RESTORE,	     /* the successor reported that it could not restore */
	CAUSE_VERIFY,	     /* update.ready: RESUME, DRIVER_OK or VmPin failed (a killed successor: .killed) */
	CAUSE_DEVICE_STATE,  /* update.ready: the device's state differs from before in a way the successor did
			      * not declare (device_state_changes; a killed successor: .killed) */
	CAUSE_DEVICE_LOST,   /* path C: the release or the reopen failed */
	CAUSE_CLAIMANT_GONE, /* path C: the claimant disconnected while the old device was released */
	CAUSE_STOPPED,	     /* the instance is released, or the daemon stops */
};

struct upd_failure {
	enum cause cause;
	char detail[300]; /* the cause's own words ("timeout in phase claim") */
	pid_t killed;	  /* D killed this pid because of it (update.kill_failed_successor), 0 = none */
};

/* a reply that comes later (update.start with wait, a path-C claim): the connection and the request id */
struct deferred {
	uint64_t conn;	 /* 0 = none */
	json_object *id; /* owned */
};

/* D's own steps by kind, for the verdict's daemon_ms_by_step: /proc reads (VmPin, a pidfd's pid, the
 * VMM's command line), device ioctls (SUSPEND, RESUME, SET_STATUS, status and state reads), state
 * writes (persist_state_write(): the state memfd, the fd store) */
enum upd_cost { UPD_COST_PROC, UPD_COST_DEVICE, UPD_COST_STATE, UPD_COST_N };
/* process-wide totals of the first two (us; the third is persist.c's persist_write_us) */
extern int64_t upd_cost_us[UPD_COST_N];
void upd_cost_add(enum upd_cost k, int64_t t0);
/* vmpin_read(), its time counted as UPD_COST_PROC */
int upd_vmpin_read(pid_t pid, int64_t *ret_pin_kb, int64_t *ret_lck_kb);

struct upd_dev {
	char name[VLU_NAME_MAX + 1]; /* held fd name ("vdpa:vdpa0") */
	char *device, *path;	     /* as opened (path C reopens path) */
	uint64_t backend;	     /* offered backend features */
	bool pa;		     /* pinning mode declared by O (default pa) */
	bool suspended;
	bool lost;		     /* path C: closed, and the reopen failed: D holds no fd of it any more */
	/* owned: devstate_read() before the suspend and after the successor's update.ready (the
	 * verdict's device_state); NULL = not read */
	json_object *state_before, *state_after;
};

struct update {
	struct instance *inst;
	uint64_t id;
	enum phase phase; /* changed only by upd_set_phase() */
	enum phase ended_in; /* phase PH_DONE: the phase before it (what update_persist_record() writes) */
	enum mode mode;
	char route; /* the path: 'A', 'B', 'C' */
	char route_reason[320];
	char token[33];
	bool token_valid;

	pid_t old_pid, new_pid;
	/* their start times (/proc/PID/stat field 22) for the state's record, read once per pid by
	 * update_persist_record() (0: not read, or unreadable) */
	pid_t old_start_of, new_start_of;
	uint64_t old_start, new_start;
	int old_pidfd; /* owned: O */
	/* old_pidfd's pid as its fdinfo said at update.start (outside the pause; a pidfd's pid never changes,
	 * only its liveness, which the claim polls): the claim of an exec-mode image compares with this */
	pid_t old_pidfd_pid;
	int new_pidfd; /* owned: N (transfer mode); exec mode: -EBADF (same process) */
	ev_io old_io, new_io;
	uid_t uid;
	gid_t *groups;	  /* owned: O's supplementary groups (SO_PEERGROUPS of its connection), for spawns */
	size_t n_groups;
	char *binary;
	json_object *argv; /* owned */
	bool spawned;
	bool arm_pending;      /* transfer mode A/B: update.arm sent to O, its update.armed not yet received */
	char *prev_binary;     /* exec mode: the image O ran (/proc/PID/exe at start), restarted on failure */
	json_object *prev_argv; /* owned */
	bool restarted;	       /* exec mode: the previous binary was spawned to take the device back */
	bool retake;	       /* transfer mode, path C: the device is being brought back to O (RB_RETAKE) */
	enum phase retake_from; /* the phase the update failed in before that */
	bool kill_pending;     /* D killed a process (fail[].killed); its exit is awaited */
	/* R14 (RB_HOLD_RECLAIM): D stopped the successor (SIGSTOP) and kills it when the update ends, after O
	 * took the iommufd charge back from its live mm; in the state as the instance's "held_successor" */
	bool new_held;
	uint64_t held_start;		/* its start time (/proc/PID/stat field 22), read when it was stopped */
	uint64_t held_old_start;	/* O's, read then (0: unread): the state names O to a restarted vlud */
	int64_t held_pin_kb, held_lck_kb; /* its VmPin/VmLck at O's update.ready of the take-back (-1: unread) */
	/* what D found at that update.ready (the verdict), update_held_look_name(): NULL unread, "stopped",
	 * "running" (continued by somebody), "exited", "another process", "unreadable" (counters not read) */
	const char *held_seen;
	/* the SIGSTOP sent, O is told (update.rolled-back) only once N is seen stopped (HOLD_WAIT_STOP, at
	 * most HOLD_STOP_WAIT_MS), or, not stopped in time, killed and gone (HOLD_WAIT_EXIT) */
	enum { HOLD_WAIT_NONE, HOLD_WAIT_STOP, HOLD_WAIT_EXIT } hold_wait;
	bool inst_gone;	/* the update ends because its instance is released (update_instance_gone()) */
	ev_timer hold_timer;
	int64_t hold_t0_us;

	/* why it failed: [0] the update, [1] the stage after it (the restarted previous binary, the retake) */
	struct upd_failure fail[2];
	enum rb_action acted;  /* the last action executed (RB_IGNORE: none yet) */
	char notes[512];       /* what the recovery did, appended to the cause in the verdict's error */

	struct deferred starter; /* waits for the verdict (update.start with wait) */
	uint64_t old_conn;     /* O's connection (events to O; transfer mode keeps it after claim) */

	struct upd_dev devs[MAX_DEVS];
	unsigned ndevs;

	int state_fd; /* owned: O's saved state (memfd) */
	uint64_t state_size;
	json_object *vrings; /* owned */

	ev_timer timer;
	int64_t t_start_us, t_phase_us, t_suspend_us;
	int64_t daemon_us; /* time spent in D's own steps (on the loop) */
	/* daemon_us split (upd_own_*(): the verdict's daemon_ms_by_phase, daemon_ms_by_step, daemon_pause_ms):
	 * by the phase it was spent in, by kind of step (enum upd_cost; the rest is "other": JSON, events,
	 * logs, checks), and the part inside the pause (t_suspend_us .. t_pause_end_us) */
	int64_t own_us[PH_COUNT];
	int64_t own_cost_us[UPD_COST_N];
	int64_t own_pause_us;
	int64_t own_t0;		     /* an open window of D's own work (0: none) */
	unsigned own_iter;	     /* the loop iteration it was opened in (a window never spans a wait) */
	int64_t own_snap[UPD_COST_N]; /* the cost totals when the window (or its last segment) opened */
	/* the pause ends (pause_ms): A after D's RESUME, B and C after D's DRIVER_OK check; 0 = not yet (a
	 * failed or rolled-back update: its verdict) */
	int64_t t_pause_end_us;
	int64_t release_us; /* path C: time the closer's worker spent closing D's old device fds (-1: none) */

	/* path C claim waiting for the closer (claim_job != NULL) */
	struct closer_job *claim_job;
	struct deferred claim;	/* N's claim request, which gets the deferred reply */
	int claim_pidfd;	/* owned: N's pidfd, goes to the instance */
	int claim_same_pidfd;	/* owned: exec mode, O's pidfd watched as N, goes to u->new_pidfd */
	json_object *phases; /* owned: [{phase, ms}] */

	int64_t expected_kb, old_before_kb, old_after_kb, new_before_kb, new_after_kb;

	/* from the successor's update.ready: the device state members it changed on purpose (owned, NULL =
	 * none declared), and its CVQ replay (commands used, time; cvq_commands 0 = nothing replayed) */
	json_object *declared;
	int64_t cvq_commands, cvq_replay_us;

	/* iommufd and VFIO devices (docs/IOMMUFD.md "The update sequence"): the successor moves their pinned
	 * memory with IOMMU_IOAS_CHANGE_PROCESS; expected_kb is their attached file mappings' size */
	bool iof;
	/* the VmPin/VmLck plan (iof_mix_plan()): expected_kb = plan.expected_kb, the vhost-vdpa share and the
	 * iommufd share apart (a mixed instance: the vhost-vdpa devices on their path in the same update) */
	struct iof_mix_plan iof_plan;
	int iof_acct;		   /* enum iof_acct of the contexts that pin (user or mm) */
	uint64_t iof_memlock_need; /* bytes of RLIMIT_MEMLOCK the caller of CHANGE_PROCESS needs */
	int64_t iof_lck_before_kb, iof_lck_after_kb; /* VmLck of O at start, of N at ready */
	int64_t iof_lck_old_after_kb;		     /* VmLck of O at N's ready (transfer mode) */
	int64_t iof_lck_new_before_kb;		     /* VmLck of N at its claim (its own mlock()s: not the move) */
	int64_t iof_lck_retaken_kb;		     /* VmLck of O at its update.ready of a take-back (-1: none) */
	json_object *iof_moved;	   /* owned: update.ready's iommufd_moved (NULL: not said) */
	json_object *iof_ioas;	   /* owned: update.ready's ioas (the new uaddrs; NULL: none), checked */
};

struct upd_inst {
	json_object *mappings; /* owned: the table as declared */
	json_object *devices;  /* owned: [{name, pinning}] */
	json_object *ioas;     /* owned: the iommufd mappings as declared (NULL: none; docs/IOMMUFD.md) */
	struct update *cur;
	json_object *last;     /* owned: verdict of the last update */
	/* after a restart of vlud that interrupted an update: the process that owned the device then (the
	 * old VMM before the hand-over, the successor after its claim), the only one that may reattach the
	 * instance while it lives (update_reattach_refused()); heir_pid 0: no reservation.  It is in the state
	 * (update_persist_reserved(), "reserved_for"), so that further restarts keep it (update_restore()) */
	pid_t heir_pid;
	int heir_pidfd;		/* owned when heir_pid */
	uint64_t heir_start;	/* that process's start time (/proc/PID/stat field 22) */
	uint64_t heir_update;	/* the id of the update the restart interrupted */
	/* R14: a successor held stopped whose update ended without killing it (update-held.c): vlud stopped
	 * (SIGTERM) during the take-back and left it stopped, or vlud restarted and found it in the state.  It
	 * stays stopped until its old VMM reattached (instance.register reattach by old_pid: a VMM takes the
	 * iommufd charge back before it reattaches) or exited, or commit_ms passed since the start-up; then
	 * it is killed.  In the state as the instance's "held_successor" until then (update_persist_held()). */
	struct upd_held {
		struct instance *inst;
		pid_t pid;		/* 0: none */
		int pidfd;		/* owned when pid: that very process (its start time checked) */
		uint64_t start, update;
		pid_t old_pid;		/* 0: not recorded (an older vlud's record): the deadline only */
		int old_pidfd;		/* owned, or -EBADF (not watched: vlud is stopping, or O unknown) */
		uint64_t old_start;
		ev_io old_io;		/* O's exit */
		ev_timer timer;		/* commit_ms after the start-up; while unidentified: the next attempt */
		bool unidentified;	/* pidfd -EBADF: /proc or pidfd_open() failed (EMFILE, ENOMEM...) at the
					 * restart; the record kept, identified again every second */
		bool kill_found;	/* unidentified when its end came: killed once identified (why: end_why) */
		bool final;		/* its instance goes (update_instance_gone()): no later attempt */
		char end_why[256];
	} held;
};

extern uint64_t update_next_id;

/* ---- update-iommufd.c: iommufd and VFIO devices (docs/IOMMUFD.md) */
/* vmm.mappings' "ioas" (NULL: none) checked against inst's held fds: 0, or request_error()'s value */
int upd_iof_declare(struct request *r, struct instance *inst, json_object *ioas);
/* inst holds an iommufd or a VFIO fd */
bool upd_iof_held(struct instance *inst);
/* what update.start's preflight found movable */
struct upd_iof_plan {
	uint64_t pinned;      /* bytes pinned by the declared attached file mappings */
	uint64_t memlock_need; /* RLIMIT_MEMLOCK bytes the caller of CHANGE_PROCESS needs */
	int acct;	      /* enum iof_acct: IOF_ACCT_MM if any pinning context uses mm mode, else user */
};
/* update.start's preflight for them: -1 and why (a refusal), or 0, *plan and why saying what will move.
 * successor: a transfer-mode named successor, 0 when vlud spawns one; vdpa: the instance holds vhost-vdpa
 * devices too (a mixed instance: mm accounting refused, docs/IOMMUFD.md "Mixed instances"). */
int upd_iof_preflight(struct instance *inst, struct upd_inst *ui, bool exec_mode, pid_t successor, bool vdpa,
		      int64_t vdpa_pinned_kb, struct upd_iof_plan *plan, char *why, size_t len);
/* update.ready of an iommufd update: the successor's iommufd_moved names every held iommufd, its "ioas"
 * (optional) keeps the layout; both kept in u (for the verdict, and the new table at commit).  0, or -1
 * with why (a verification failure). */
int upd_iof_ready(struct update *u, json_object *args, char *why, size_t len);
/* an update that committed: the successor's "ioas" (its new uaddrs) becomes the instance's table */
void upd_iof_commit(struct update *u, struct upd_inst *ui);
/* the claim reply's "iommufd" member: which iommufds the claimant must call CHANGE_PROCESS on */
json_object *upd_iof_claim_info(struct update *u);
/* the verdict's "iommufd" member (NULL when the update has none) */
json_object *upd_iof_verdict(const struct update *u);

/* ---- update.c: helpers shared by the engine's files */
struct upd_inst *upd_ui_get(struct instance *inst, bool create);
int64_t upd_jint(json_object *o, const char *k, int64_t dflt);
const char *upd_jstr(json_object *o, const char *k);
unsigned upd_claim_max_fds(void);
struct conn *upd_conn_by_id(uint64_t id);
bool upd_pidfd_alive(int pidfd);
/* Does process pid hold an fd of the character device rdev (/proc/PID/fd)?  1 yes, 0 no, -errno unknown. */
int upd_pid_holds_rdev(pid_t pid, dev_t rdev);
/* Exec mode, phase exec (update.exec sent, no claim yet): has O's process exec'ed?  Its connection does not
 * tell (the new image may have kept it across the exec: vlu_update_exec_keep); its device fds do: they are
 * close-on-exec, and O holds a copy of each device until its exec.  True when it holds none of them (or
 * /proc cannot tell, as update_restore() decides); false outside that phase. */
bool upd_old_execed(const struct update *u);
pid_t upd_pidfd_pid(int pidfd);
/* process pid's start time (/proc/PID/stat field 22, clock ticks after boot): 0, or -errno (-ENOENT: no such
 * process) */
int upd_pid_starttime(pid_t pid, uint64_t *ret);
/* (with its state letter, every thread's, its effective uid: update-proc.h) */

/* end inst's reservation (update_reattach_refused()): the pidfd closed; the caller writes the state */
void upd_heir_drop(struct upd_inst *ui);
const char *upd_mode_name(enum mode m);
/* "A", "B", "C" or "-" (a constant string) */
const char *upd_route_str(char route);
bool upd_has_bf(uint64_t f, unsigned bit);
json_object *upd_event_base(struct update *u);
/* the one phase change: records the time of the phase left, arms the phase's deadline (the phase table),
 * emits update.phase, writes the state */
void upd_set_phase(struct update *u, enum phase ph);
/* D's own time (daemon_us and its splits): a window opened at t0 by a handler, split at phase changes and
 * at the pause's ends, closed at the handler's end (update.c) */
void upd_own_begin(struct update *u, int64_t t0);
void upd_own_split(struct update *u);
void upd_own_end(struct update *u);
/* the pause ends now (pause_ms): A after D's RESUME, B and C after D's DRIVER_OK check */
void upd_pause_end(struct update *u);
int upd_dev_ioctl(struct update *u, unsigned i, unsigned long req, void *arg);
int upd_dev_status(struct update *u, unsigned i, uint8_t *st);
/* device i's visible state (devstate.h), or an "error" object when D holds no fd of it */
json_object *upd_dev_state(struct update *u, unsigned i);
bool upd_any_suspended(const struct update *u);
void upd_resume_all(struct update *u);
void upd_watch_pid(struct update *u, ev_io *w, int pidfd);
void update_free(struct update *u);
static inline void update_freep(struct update **u)
{
	update_free(*u);
	*u = NULL;
}
#define _cleanup_update_ _cleanup_(update_freep)
bool upd_disruptive(const struct update *u);
/* RLIMIT_MEMLOCK bytes a successor (or the restarted previous binary) needs to take the charge */
static inline uint64_t upd_memlock_need(const struct update *u)
{
	return u->iof ? u->iof_memlock_need : (uint64_t)u->expected_kb * 1024;
}
/* VmPin moved as the mode says: exec, the same process pins expected_kb; transfer, O lost and N gained it */
bool upd_vmpin_moved(const struct update *u);
/* a failure of the current stage (fail[0], or fail[1] once restarted or retaking): the first one wins */
void upd_set_failure(struct update *u, enum cause c, const char *fmt, ...) _printf_(3, 4);
/* what the recovery did, appended to the verdict's error */
void upd_add_note(struct update *u, const char *fmt, ...) _printf_(2, 3);
/* the verdict's error text, from the causes and the notes ("" when nothing failed) */
void upd_error_text(const struct update *u, char *buf, size_t len);
/* end the update: verdict to the starter, the event, O told in transfer mode; u is freed.  ret_verdict
 * (optional) gets a reference for a synchronous reply. */
void upd_finish(struct update *u, const char *result, enum vlu_event_id event, json_object **ret_verdict);

/* deferred replies */
void upd_deferred_take(struct deferred *d, struct request *r);
/* the reply (ret consumed, fds borrowed) or an error with desc (the verdict, if any, added to it) */
void upd_deferred_return(struct deferred *d, json_object *ret, const int *fds, size_t n);
void upd_deferred_error(struct deferred *d, enum vlu_error_class cls, const char *desc, json_object *verdict);
void upd_deferred_drop(struct deferred *d);

/* ---- update-rollback.c */
void upd_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);
/* R14: the stop awaited before O is told (u->hold_wait) */
void upd_hold_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);
void upd_old_exit_cb(struct ev_loop *loop, ev_io *w, int revents);
void upd_new_exit_cb(struct ev_loop *loop, ev_io *w, int revents);
/* a failure (cause c, detail fmt): decide and act (update-decide.c) */
void upd_rollback(struct update *u, enum rb_trigger t, enum cause c, const char *fmt, ...) _printf_(4, 5);
/* the same, the cause already recorded (upd_set_failure()) */
void upd_rollback_act(struct update *u, enum rb_trigger t);
/* O's connection when O is told the update's end directly (update_tells_old()), else NULL */
struct conn *upd_old_conn_told(const struct update *u);
/* update.ready by O once the reopened device is back (phase rollback) */
int upd_retake_ready(struct request *r, struct update *u, const char *err);
/* R14: the successor D stopped (u->new_held) is killed now (the update ends: upd_finish()); vlud stopping
 * with a state that survives it: left stopped, recorded for the next vlud (upd_held_leave()) */
void upd_held_kill(struct update *u);
/* the state outlives a stop of vlud (the fd store, and update.held_successor_survives_stop): a held successor
 * may be left stopped and recorded at a SIGTERM */
bool upd_held_survives_stop(void);

/* ---- update-held.c: a held successor that outlives its update (R14) */
#define HOLD_STOP_WAIT_MS 200
/* vlud is stopping during u's take-back: N stays stopped and recorded (ui->held, no watchers); 0, or -errno
 * (then it is killed as before) */
int upd_held_leave(struct update *u);
/* a restart found inst's held successor rs in the state: kept stopped (pidfd: that process, opened after
 * its start time was checked; old_pidfd: O's, or -EBADF when O is unknown), or killed at once when O is
 * known and gone (old_gone, with why) */
void upd_held_adopt(struct instance *inst, const struct state_reservation *rs, int pidfd, int old_pidfd,
		    const char *old_gone);
/* the end of such a hold: N killed (SIGKILL through its pidfd) and why logged, the record gone from the
 * state; kill false (vlud exiting with a state that survives): left stopped and recorded */
void upd_held_end(struct upd_inst *ui, bool kill, const char *fmt, ...) _printf_(3, 4);
/* the record rs (a restart's, or one kept unidentified) checked and acted on: dropped when its pid cannot be
 * a successor of inst's (<= 1, vlud's own, another uid) or names nobody or another process now, kept
 * unidentified when /proc or pidfd_open() fails, else upd_held_adopt() (update-restore.c) */
void upd_held_restore(struct instance *inst, const struct state_reservation *rs, bool retry);
/* a record kept unidentified (upd_held_restore()): tried again every second (update-held.c) */
void upd_held_unidentified(struct instance *inst, const struct state_reservation *rs);
/* the process a record names, told by its start time (update-restore.c): 0 and *st (pid's start time now;
 * when it is rs->start, *fd is that process's pidfd), or -errno with *fd -EBADF */
int upd_recorded_pidfd(const struct state_reservation *rs, uint64_t *st, int *fd);
/* the held successor pid (its pidfd fd) is the instance's uid's: 0; 1 another uid's (logged); -errno */
int upd_held_uid_check(const struct instance *inst, pid_t pid, int fd);


/* ---- update-phases.c */
int upd_release_devices(struct update *u, closer_done_fn done, char *why, size_t len);
int upd_reopen_devices(struct update *u, char *why, size_t len);

#endif
