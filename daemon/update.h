/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * update.h - the live-update engine (docs/UPDATE.md): the mapping table of each instance,
 * the update state machine (preflight, suspend, save, reset/release, exec|spawn, claim, restore,
 * resume/verify, commit), successor binding (token + pid + uid), VmPin verification and rollback.
 *
 * The per-instance data hangs off instance->update (owned by this module, freed by
 * update_instance_gone(), which instance.c calls before an instance is freed).
 */
#ifndef VLUD_UPDATE_H
#define VLUD_UPDATE_H

#include <stdbool.h>

struct request;
struct instance;
struct state_doc;
struct state_update;

int update_cmd_vmm_mappings(struct request *r);
int update_cmd_start(struct request *r);
int update_cmd_status(struct request *r);
int update_cmd_abort(struct request *r);
int update_cmd_saved(struct request *r);
int update_cmd_armed(struct request *r);
int update_cmd_claim(struct request *r);
int update_cmd_ready(struct request *r);

/* the instance is being freed (its fds still open): stop its update (devices resumed, verdict failed),
 * free our data */
void update_instance_gone(struct instance *inst);
/* the daemon stops: end every running update the same way, before connections are torn down */
void update_stop_all(const char *why);
/* an update of inst runs (instance.register reattach, fd.remove, fd.store replace and a VMM's
 * instance.release are refused with Busy meanwhile) */
bool update_running(const struct instance *inst);

/* instance.register reattach by pid: 0, or -EBUSY with why (the instance is reserved to the process that
 * owned its device when a restart of vlud interrupted an update, while that process lives) */
int update_reattach_refused(struct instance *inst, pid_t pid, char *why, size_t len);
/* ... and once that reattach is done: the reservation ends if pid is the process it was for */
void update_reattached(struct instance *inst, pid_t pid);

/* persistence (daemon/persist.c builds the state document from these): the record of inst's running
 * update (false: none runs), and its last verdict as JSON text (malloc()ed, bounded by
 * VLUD_STATE_VERDICT_MAX; NULL: none) */
bool update_persist_record(struct instance *inst, struct state_update *ret);
char *update_persist_last(struct instance *inst);
/* inst's vmm.mappings table as JSON text (malloc()ed, bounded by VLUD_STATE_MAPPINGS_MAX; NULL: none) */
char *update_persist_mappings(struct instance *inst);
/* inst's reattach reservation (update_reattach_refused()) for the state; {0} when there is none */
struct state_reservation update_persist_reserved(struct instance *inst);
/* the successor inst's running update keeps stopped (docs/UPDATE.md R14) for the state; {0} when none */
struct state_reservation update_persist_held(struct instance *inst);
/* start-up, after the fds are adopted: the mapping tables, last verdicts and reattach reservations (each kept only
 * while its process, told by its start time, still lives) come back, and every update that was running
 * when the previous vlud died ends here: what its phase allows is brought back (devices D suspended
 * before the hand-over are RESUMEd), the rest reported; a failed verdict ("vlud restarted during the
 * update (phase X): ...") becomes the instance's last one, logged and emitted as update.completed */
void update_restore(const struct state_doc *doc);

#endif
