/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * state.h - the persisted daemon state (the "vlud-state" memfd kept in
 * systemd's fd store).  Pure serialise/parse, no I/O, unit-tested in
 * tests/unit/test-state.c.
 *
 * Format: the header line "VLUDSTATE 1\n", then one JSON object:
 *   {"next_id":N, "written_us":T,
 *    "instances":[{"name","pid","uid","gid","registered_us","orphaned":bool,"orphaned_us"}],
 *    "fds":[{"id","instance","name","type","dev","ino","rdev","created_us","device"?,"path"?,"alias_of"?,
 *            "group"?}],
 *    "updates"?:[{"instance","id","mode","path","phase","old_pid","new_pid","old_start"?,"new_start"?,
 *                 "started_us","devices":[{"name","suspended","reset","released"}],"iommufd"?:[names]}]}
 * then optional whitespace.  An instance may carry "last_update":{...} (the verdict of its last update,
 * at most VLUD_STATE_VERDICT_MAX bytes as JSON) and "mappings":{...} (its vmm.mappings declaration, at
 * most VLUD_STATE_MAPPINGS_MAX bytes), and "reserved_for":{"pid","start","update"} (the one process that
 * may reattach it, struct state_reservation).  "updates" (a live update running when the document was
 * written, at most one per instance), "last_update", "mappings" and "reserved_for" are optional: documents
 * written before them parse unchanged, so the version stays 1 (and a vlud that predates "reserved_for"
 * reads a newer document without it: it does not look at members of an instance it does not know).
 * An instance may also carry "held_successor":{"pid","start","update","old_pid"?,"old_start"?} (the same
 * shape plus the old VMM's pid and start time, both or neither: a successor that vlud stopped during a
 * rollback until the old VMM took the iommufd charge back, docs/UPDATE.md R14; a restarted vlud keeps it
 * stopped until that old VMM reattached or exited, or commit_ms passed, then kills it), optional like
 * "reserved_for" (which has no "old_pid": it is not written there and not read there).
 * A malformed "reserved_for" or "held_successor" does not make the document malformed: only that member
 * is dropped (state_instance.reserved_bad, held_bad say why).
 * An update record may name the update's iommufd and VFIO fds ("iommufd":[held fd names], 1 to
 * VLUD_STATE_UPDATE_MAX_IOF, none a device name of the record; docs/UPDATE.md "An update of iommufd/VFIO
 * devices").  A record with vhost-vdpa devices (a mixed instance's) is an "updates" entry with that optional
 * member.  A record with none (an iommufd-only update) is not: a vlud that predates it refuses a "devices"
 * array of 0 and with it the whole document, and drops every stored fd.  It is the instance's optional
 * member "iommufd_update" instead, an "updates" entry without "instance", "devices":[] and "iommufd"
 * required, which such a vlud does not look at (it ends no update, as before).  state_parse() returns it in
 * updates[] with n_devs 0; state_serialize() writes every record with n_devs 0 there.  A malformed
 * "iommufd_update" costs that record only (iof_update_bad), a malformed "iommufd" of an "updates" entry its
 * names only (state_update.iof_bad).
 * 64-bit numbers (dev, ino, rdev, ids) are JSON integers; json-c keeps uint64 exactly.
 *
 * The memfd holds an index page and two slots, so that a rewrite killed half-way (SIGKILL can cut a
 * multi-page write between pages) is never adopted:
 *   offset 0, one page (VLUD_STATE_INDEX_SIZE bytes): "VLUDSTATE 1\n{"offset":O,"length":L}\n" + blanks
 *   offset O (page aligned, >= one page): the current document, L bytes
 * The writer puts a new document in the slot not in use, then rewrites the index page with a single
 * one-page pwrite (which a signal cannot cut), then reuses the other slot next time.
 */
#ifndef VLUD_STATE_H
#define VLUD_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VLUD_STATE_MAGIC "VLUDSTATE"
#define VLUD_STATE_VERSION 1
#define VLUD_STATE_NAME_MAX 64
/* a device name or node path in an update record */
#define VLUD_STATE_DEV_MAX 255
#define VLUD_STATE_MAX_BYTES (64u * 1024 * 1024)

struct state_instance {
	char name[VLUD_STATE_NAME_MAX + 1];
	int32_t pid;
	uint32_t uid, gid;
	int64_t registered_us; /* CLOCK_REALTIME */
	bool orphaned;
	int64_t orphaned_us;
	char *last_update; /* the verdict of its last update as JSON text (an object, at most
			    * VLUD_STATE_VERDICT_MAX bytes), or NULL */
	char *mappings;	   /* its vmm.mappings declaration {"mappings":[...],"devices":[...]} as JSON text
			    * (an object, at most VLUD_STATE_MAPPINGS_MAX bytes), or NULL */
	/* "reserved_for": after a restart of vlud that interrupted an update, the process that owned the
	 * device then, the only one that may reattach the instance while it lives (docs/UPDATE.md "Only the
	 * device's owner reattaches"); pid 0: none */
	struct state_reservation {
		int32_t pid;	 /* 1..INT32_MAX */
		uint64_t start;	 /* that process's start time: /proc/PID/stat field 22 (clock ticks after
				  * boot), which tells it from a later process given the same pid */
		uint64_t update; /* the id of the interrupted update (> 0) */
		/* "held_successor" only, optional ("old_pid", "old_start"): the old VMM that takes the iommufd
		 * charge back from the held successor, and its start time; 0: not recorded (an older vlud) */
		int32_t old_pid;
		uint64_t old_start;
	} reserved;
	/* state_parse(): a "reserved_for" that is there but malformed makes this the reason (static text)
	 * and leaves reserved empty; the rest of the document is kept (the caller logs it) */
	const char *reserved_bad;
	/* "held_successor": a successor vlud stopped (SIGSTOP) for the old VMM's take-back of the iommufd
	 * charge (docs/UPDATE.md R14), killed at the update's end, or by the next vlud; pid 0: none */
	struct state_reservation held;
	const char *held_bad; /* as reserved_bad */
	/* "iommufd_update" there but malformed (or beside an "updates" entry of the same instance): the reason
	 * (static text); the record is dropped, the rest of the document kept (the caller logs it) */
	const char *iof_update_bad;
};

#define VLUD_STATE_MAPPINGS_MAX 65536

#define VLUD_STATE_VERDICT_MAX 8192
#define VLUD_STATE_UPDATE_MAX_DEVS 16
/* the iommufd and VFIO fds an update record names (the first ones held; the restart's decision does not
 * depend on them, the verdict lists them) */
#define VLUD_STATE_UPDATE_MAX_IOF 32

/* A live update that was running when the document was written (daemon/update.c; what a restarted
 * daemon does with it: docs/UPDATE.md "vlud restarted during an update"). */
struct state_update_dev {
	char name[VLUD_STATE_NAME_MAX + 1]; /* the held fd's name ("vdpa:vdpa0") */
	bool suspended; /* D SUSPENDed it (or was about to, in phase suspend) and has not RESUMEd it */
	bool reset;	/* path B: D set status 0 (or was about to, in phase reset) */
	bool released;	/* path C: D's copy went to the closer (the device was reset and unpinned; the held
			 * fd of that name, if any, is a fresh open of the node) */
	/* the device as requested and the node opened (device.open), "" when unknown or too long: a
	 * restarted vlud reopens a released device that was not reopened yet */
	char device[VLUD_STATE_DEV_MAX + 1], node[VLUD_STATE_DEV_MAX + 1];
};

struct state_update {
	char instance[VLUD_STATE_NAME_MAX + 1];
	uint64_t id; /* > 0 */
	char mode[16];	/* "exec" | "transfer" */
	char path;	/* 'A' | 'B' | 'C' */
	char phase[16]; /* a phase name of docs/UPDATE.md, state_phase_known() */
	int32_t old_pid, new_pid; /* new_pid 0: none yet */
	/* their start times (/proc/PID/stat field 22), "old_start"/"new_start", optional: 0 unknown (an older
	 * vlud's record, or unreadable); a restarted vlud tells by them whether the pid is still that process */
	uint64_t old_start, new_start;
	/* parsing: a start time present but not a number (0 above): the record stands, without a
	 * reservation for that pid (a pid whose identity cannot be checked is reserved to nobody) */
	bool old_start_bad, new_start_bad;
	int64_t started_us;	  /* CLOCK_REALTIME */
	struct state_update_dev devs[VLUD_STATE_UPDATE_MAX_DEVS];
	unsigned n_devs; /* 0..VLUD_STATE_UPDATE_MAX_DEVS, names unique; 0 only with n_iof > 0 */
	/* "iommufd": the held fd names of the update's iommufds and VFIO devices (their charge moves with the
	 * successor's IOMMU_IOAS_CHANGE_PROCESS), unique, none a name of devs[]; n_iof 0: none (a vhost-vdpa
	 * only update, or an older vlud's record) */
	char iof[VLUD_STATE_UPDATE_MAX_IOF][VLUD_STATE_NAME_MAX + 1];
	unsigned n_iof;
	/* parsing an "updates" entry: its "iommufd" is there but malformed: the reason (static text), n_iof 0;
	 * the record stands (the restart's decision does not need the names) */
	const char *iof_bad;
};

/* the phase names an update record may carry */
bool state_phase_known(const char *phase);

struct state_fd {
	uint64_t id; /* > 0, unique, < next_id; fd store name "h<id>" */
	char instance[VLUD_STATE_NAME_MAX + 1];
	char name[VLUD_STATE_NAME_MAX + 1];
	char type[16]; /* fdtype name */
	uint64_t dev, ino, rdev;
	int64_t created_us;
	char *device; /* device.open: the device as requested (name or path), else NULL */
	char *path;   /* device.open: the node opened, else NULL */
	uint64_t alias_of; /* 0, or the id of another fd entry sharing this open file description: this
			    * one is not in the fd store (systemd de-duplicates identical files) and is
			    * restored as a dup of that entry's fd */
	uint64_t group;	   /* 0: stored alone as "h<id>"; else stored with the other memfds of one change under
			    * the shared name "g<group>" (one FDSTORE datagram), told apart by identity */
};

struct state_doc {
	uint64_t next_id;
	int64_t written_us;
	struct state_instance *instances;
	size_t n_instances;
	struct state_fd *fds;
	size_t n_fds;
	struct state_update *updates;
	size_t n_updates;
};

/* Serialise doc: *ret_buf is malloc()ed, NUL-terminated, *ret_len excludes the NUL. */
int state_serialize(const struct state_doc *doc, char **ret_buf, size_t *ret_len);

/* Parse and validate buf[0..len).  -EPROTO: wrong magic; -EPROTONOSUPPORT: other version;
 * -EINVAL: malformed (bad JSON, missing/mistyped field, bad name, duplicate instance or fd id/name,
 * fd of an unknown instance, id >= next_id, alias_of naming itself, a missing id or another alias; an update
 * of an unknown instance, two of one instance, an unknown mode, path or phase, a start time that is not an
 * integer >= 0, no or too many devices, a duplicate device name; a last_update or mappings that is not an object or exceeds its limit).  Nothing
 * is written on failure.  state_serialize refuses (-EINVAL) a last_update or mappings that is not such an object,
 * a reservation with a pid but no update id, an update record with neither devices nor iommufd names, more
 * than the limits of either, and a record with no device whose instance is not in the document (or that
 * shares it with another record). */
int state_parse(const char *buf, size_t len, struct state_doc *ret);

void state_doc_done(struct state_doc *doc);

#define VLUD_STATE_INDEX_SIZE 4096

/* The index page: buf gets exactly VLUD_STATE_INDEX_SIZE bytes (blank padded).  -EINVAL for an offset
 * inside the index page or not page aligned, or a length of 0. */
int state_index_serialize(uint64_t offset, uint64_t length, char buf[VLUD_STATE_INDEX_SIZE]);
/* Parse an index page (len bytes, at most VLUD_STATE_INDEX_SIZE are looked at).  -EPROTO wrong magic,
 * -EPROTONOSUPPORT other version, -EINVAL malformed or out of range (length > VLUD_STATE_MAX_BYTES). */
int state_index_parse(const char *buf, size_t len, uint64_t *ret_offset, uint64_t *ret_length);

/* The index page with a log: "log_offset"/"log_length" name the records appended since the document
 * was written (log_length 0: none; the keys are then left out, as older writers did). */
int state_index_serialize_log(uint64_t offset, uint64_t length, uint64_t log_offset, uint64_t log_length,
			      char buf[VLUD_STATE_INDEX_SIZE]);
/* ret_log_* may be NULL; an index without log keys gives 0, 0. */
int state_index_parse_log(const char *buf, size_t len, uint64_t *ret_offset, uint64_t *ret_length,
			  uint64_t *ret_log_offset, uint64_t *ret_log_length);

/*
 * Log records: what changed in the held fds since the document was written, so that one change costs
 * O(1) bytes, not a rewrite of everything.  One JSON object per line:
 *   {"op":"add","fd":{an "fds" entry},"next_id":N}     a held fd came
 *   {"op":"del","id":ID}                               a held fd went
 *   {"op":"group","ids":[ID,...],"group":G,"next_id":N} these fds are now stored as "g<G>"
 * The writer appends a record, then rewrites the index page with the new log_length: a record cut
 * by SIGKILL is outside log_length and never read.  A full rewrite (compaction) empties the log.
 */
int state_log_add(const struct state_fd *sf, uint64_t next_id, char **ret_buf, size_t *ret_len);
int state_log_del(uint64_t id, char **ret_buf, size_t *ret_len);
int state_log_group(uint64_t group, const uint64_t *ids, size_t n, uint64_t next_id, char **ret_buf,
		    size_t *ret_len);
/* Apply the records buf[0..len) to doc (a parsed document).  -EINVAL: a record malformed, unknown or
 * inconsistent (add of a known id or name or of an unknown instance, del or group of an unknown id, a
 * record without its newline); doc may then be partly updated (the caller drops it). */
int state_log_apply(struct state_doc *doc, const char *buf, size_t len);

#endif
