/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * persist.c - restart survival (docs/DESIGN.md "Persistence across daemon
 * restarts").
 *
 * With NOTIFY_SOCKET set, every held fd is pushed once to systemd's fd
 * store (FDPOLL=0: PID 1 must not drop an fd on EPOLLHUP) and removed with
 * FDSTOREREMOVE when released.  The memfds of one change go in one
 * datagram under one shared name "g<group>" (FDNAME applies to every fd
 * of a message; systemd keeps repeated names), told apart at start-up by
 * their identity (a memfd's inode is its own); anything else goes alone
 * as "h<id>" (eventfds share one inode, a device must leave the store on
 * its own).  When some but not all of a group go, the survivors are
 * re-opened (/proc/self/fd: a new open file description of the same
 * memfd, which systemd's de-duplication does not fold into the old one),
 * pushed as a new group, logged, and only then the old group removed.
 *
 * The state memfd "vlud-state" (stored once as "state") holds a document
 * and a log (state.h): a change of the held fds appends its records and
 * rewrites the one-page index with the new log length (O(1) per change);
 * anything else, and a log grown past four times the document, writes a
 * new document (compaction): it goes to the slot not in use, then the
 * index is flipped to it with an empty log.  A write cut by SIGKILL is
 * never adopted: the index still names the previous, complete state.
 * Records of one request are buffered and appended together at
 * persist_fds_commit(); a held fd is named by the state iff its
 * state_gen is the current generation (bumped by every document).
 *
 * Aliases: systemd's fd store drops an fd whose open file description is
 * already stored (kcmp), whatever its name.  Such a held fd is recorded
 * in the state as an alias of the stored one and restored as a dup of it;
 * when the stored one goes, its first alias is stored in its place.  A new
 * fd whose file is that of a held fd being replaced (unlinked) takes over
 * its place at once instead (hand_over()), and so does an alias of a
 * stored fd that leaves.
 *
 * Ordering: a new fd goes to the store before the state names it; a
 * removed fd leaves the state before the store.  A crash in between leaves
 * an unknown "h<id>" (dropped at start-up), never a state entry whose fd
 * is missing.
 *
 * Start-up: LISTEN_FDS/LISTEN_FDNAMES are sorted into the listening socket
 * (any name), "state", "h<id>" and "g<group>"; every one is adopted only if
 * the state (document + log) lists it and its fstat identity (dev, ino,
 * rdev) and type match;
 * anything else is logged, closed and removed from the store.  Instances
 * come back orphaned (reason "daemon restarted"): their VMMs reattach with
 * instance.register {reattach:true}.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/close_range.h>
#include <linux/kcmp.h>
#include <systemd/sd-daemon.h>

#include "fdtype.h"
#include "held.h"
#include "instance.h"
#include "json-oom.h"
#include "persist.h"
#include "state.h"
#include "update.h"
#include "vlu-proto.h"
#include "vlud.h"

static void store_remove_name(const char *name)
{
	char msg[128];
	int r;

	if (!vl.fdstore)
		return;
	snprintf(msg, sizeof(msg), "FDSTOREREMOVE=1\nFDNAME=%s", name);
	log_debug("fd store: - %s", name);
	r = sd_notify(0, msg);
	if (r < 0)
		log_warning("fd store: removing %s: %s", name, strerror(-r));
}

/* Same open file description (kcmp KCMP_FILE on ourselves)?  systemd's fd store keeps one copy of
 * identical files whatever their names, so a second held fd sharing a file with one already stored is
 * recorded as an alias of it instead of being stored.
 * The held fds that are in the fd store ("primaries") are kept sorted by their inode (dev, ino) and,
 * within one inode, by kcmp(KCMP_FILE) order, i.e. by struct file: two fds of different inodes never
 * share a file, so finding whether a new fd shares its open file with a stored one costs a binary search
 * without system calls, plus O(log k) kcmp calls among the k stored fds of its inode (a memfd: none or
 * one; eventfds all share one anonymous inode, so dev/ino alone cannot tell them apart). */
static struct {
	struct held **v;
	size_t n, cap;
	bool broken;   /* kcmp unavailable: no alias detection */
	bool unsorted; /* start-up appends the adopted ones and sorts them once (prim_sort()) */
} prim;

/* kcmp order of a against b: 0 same file, <0 a before b, >0 after; -2 on error */
static int file_cmp(int a, int b)
{
	static pid_t self; /* getpid() is a system call: twice per comparison otherwise */
	long r;

	if (!self)
		self = getpid();
	r = syscall(SYS_kcmp, self, self, KCMP_FILE, a, b);

	if (r < 0)
		return -2;
	return r == 0 ? 0 : r == 1 ? -1 : 1;
}

/* the order of prim.v: inode, then struct file (kcmp); -2 on a kcmp error */
static int prim_cmp(const struct held *a, const struct held *b)
{
	if (a->dev != b->dev)
		return a->dev < b->dev ? -1 : 1;
	if (a->ino != b->ino)
		return a->ino < b->ino ? -1 : 1;
	return a == b ? 0 : file_cmp(a->fd, b->fd);
}

static bool prim_sort_failed;

static int prim_qsort_cmp(const void *x, const void *y)
{
	int c = prim_cmp(*(struct held *const *)x, *(struct held *const *)y);

	if (c == -2) {
		prim_sort_failed = true;
		return 0;
	}
	return c;
}

/* after start-up's adoption: one sort instead of a binary-search insertion per adopted fd */
static void prim_sort(void)
{
	if (!prim.unsorted)
		return;
	prim.unsorted = false;
	prim_sort_failed = false;
	if (prim.n > 1)
		qsort(prim.v, prim.n, sizeof(*prim.v), prim_qsort_cmp);
	if (prim_sort_failed) {
		log_warning("kcmp: %m; fds stored twice will not be recognised as aliases");
		prim.broken = true;
	}
}

/* binary search: index of h's file in prim.v (*ret_found) or where it would go; -1 on kcmp error */
static ssize_t prim_search(const struct held *h, bool *ret_found)
{
	size_t lo = 0, hi = prim.n;

	*ret_found = false;
	prim_sort();
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = prim_cmp(h, prim.v[mid]);

		if (c == -2)
			return -1;
		if (c == 0) {
			*ret_found = true;
			return (ssize_t)mid;
		}
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return (ssize_t)lo;
}

static bool prim_grow(void)
{
	if (prim.n == prim.cap) {
		size_t nc = prim.cap ? prim.cap * 2 : 64;
		struct held **nv = realloc(prim.v, nc * sizeof(*nv));

		if (!nv) {
			prim.broken = true;
			return false;
		}
		prim.v = nv;
		prim.cap = nc;
	}
	return true;
}

static void prim_insert(struct held *h)
{
	bool found;
	ssize_t i;

	if (prim.broken)
		return;
	i = prim_search(h, &found);
	if (i < 0) {
		log_warning("kcmp: %m; fds stored twice will not be recognised as aliases");
		prim.broken = true;
		return;
	}
	if (!prim_grow())
		return;
	memmove(prim.v + i + 1, prim.v + i, (prim.n - (size_t)i) * sizeof(*prim.v));
	prim.v[i] = h;
	prim.n++;
}

/* start-up: appended, sorted by the first search (prim_sort()) */
static void prim_append(struct held *h)
{
	if (prim.broken || !prim_grow())
		return;
	prim.v[prim.n++] = h;
	prim.unsorted = true;
}

static void prim_remove(const struct held *h)
{
	bool found;
	ssize_t k = prim.broken ? -1 : prim_search(h, &found);

	if (k >= 0 && found && prim.v[k] == h) {
		memmove(prim.v + k, prim.v + k + 1, (prim.n - (size_t)k - 1) * sizeof(*prim.v));
		prim.n--;
		return;
	}
	for (size_t i = 0; i < prim.n; i++)
		if (prim.v[i] == h) {
			memmove(prim.v + i, prim.v + i + 1, (prim.n - i - 1) * sizeof(*prim.v));
			prim.n--;
			return;
		}
}

static struct held *find_primary(const struct held *h)
{
	bool found;
	ssize_t i;

	if (prim.broken || prim.n == 0)
		return NULL;
	i = prim_search(h, &found);
	return i >= 0 && found ? prim.v[i] : NULL;
}


static void store_push(const struct held *h)
{
	char msg[128];
	int r;

	snprintf(msg, sizeof(msg), "FDSTORE=1\nFDNAME=h%llu\nFDPOLL=0", (unsigned long long)h->id);
	log_debug("fd store: + h%llu (%s/%s, ino %llu)", (unsigned long long)h->id, h->inst->name, h->name,
		  (unsigned long long)h->ino);
	r = sd_pid_notify_with_fds(0, 0, msg, &h->fd, 1);
	if (r <= 0)
		log_warning("fd store: storing h%llu (%s/%s): %s", (unsigned long long)h->id, h->inst->name, h->name,
			    r < 0 ? strerror(-r) : "NOTIFY_SOCKET not set");
}

/* n fds in one datagram as "g<group>" (n <= SCM_MAX_FD).  0 or -errno. */
static int store_push_group(uint64_t group, const int *fds, size_t n)
{
	char msg[128];
	int r;

	snprintf(msg, sizeof(msg), "FDSTORE=1\nFDNAME=g%llu\nFDPOLL=0", (unsigned long long)group);
	log_debug("fd store: + g%llu (%zu memfds)", (unsigned long long)group, n);
	r = sd_pid_notify_with_fds(0, 0, msg, fds, (unsigned)n);
	if (r <= 0) {
		log_warning("fd store: storing g%llu (%zu memfds): %s", (unsigned long long)group, n,
			    r < 0 ? strerror(-r) : "NOTIFY_SOCKET not set");
		return r < 0 ? r : -ENOTCONN;
	}
	return 0;
}

/* The groups in the store: how many held fds each still stands for.  shrunk: some went, the store
 * still has their copies: regroup() moves the rest to a new group. */
static struct {
	struct group {
		uint64_t id;
		unsigned live;
		bool shrunk;
		bool h_name; /* stored as "h<id>" (one fd that an heir took over), not "g<id>" */
	} *v;
	size_t n, cap;
} grp;

static struct group *grp_find(uint64_t id)
{
	for (size_t i = 0; i < grp.n; i++)
		if (grp.v[i].id == id)
			return &grp.v[i];
	return NULL;
}

static struct group *grp_add(uint64_t id)
{
	struct group *g = grp_find(id);

	if (g)
		return g;
	if (grp.n == grp.cap) {
		size_t nc = grp.cap ? grp.cap * 2 : 16;
		struct group *nv = realloc(grp.v, nc * sizeof(*nv));

		if (!nv)
			return NULL;
		grp.v = nv;
		grp.cap = nc;
	}
	grp.v[grp.n] = (struct group){ .id = id };
	return &grp.v[grp.n++];
}

static void group_name(const struct group *g, char *buf, size_t len)
{
	snprintf(buf, len, "%c%llu", g->h_name ? 'h' : 'g', (unsigned long long)g->id);
}

static void grp_del(struct group *g)
{
	*g = grp.v[--grp.n];
}

/* the held fds that are aliases (alias_of set): few, so a removed primary finds its own in O(aliases)
 * instead of walking every held fd */
static struct {
	struct held **v;
	size_t n, cap;
} als;

static void als_add(struct held *h)
{
	if (als.n == als.cap) {
		size_t nc = als.cap ? als.cap * 2 : 16;
		struct held **nv = realloc(als.v, nc * sizeof(*nv));

		if (!nv) {
			/* the same policy as json-c's allocation failures (docs/DESIGN.md "Out of memory"): a
			 * primary leaving without knowing its alias would lose it from the store */
			log_error("out of memory (alias table): aborting; the service manager restarts vlud");
			abort();
		}
		als.v = nv;
		als.cap = nc;
	}
	als.v[als.n++] = h;
}

static void als_remove(const struct held *h)
{
	for (size_t i = 0; i < als.n; i++)
		if (als.v[i] == h) {
			als.v[i] = als.v[--als.n];
			return;
		}
}

/* fds added since the last commit, not yet in the store nor in the state */
static struct {
	struct held **v;
	size_t n, cap;
} pend;

/* records of the current request not yet appended (persist_fds_commit) */
static struct {
	char *buf;
	size_t len, cap;
	bool broken; /* out of memory: the next commit writes a document instead */
} rec;

static uint64_t state_gen = 1; /* the current generation: +1 per document written */

static bool pend_add(struct held *h)
{
	if (pend.n == pend.cap) {
		size_t nc = pend.cap ? pend.cap * 2 : 64;
		struct held **nv = realloc(pend.v, nc * sizeof(*nv));

		if (!nv)
			return false;
		pend.v = nv;
		pend.cap = nc;
	}
	pend.v[pend.n++] = h;
	h->pending = true;
	return true;
}

static void pend_remove(struct held *h)
{
	for (size_t i = 0; i < pend.n; i++)
		if (pend.v[i] == h) {
			memmove(pend.v + i, pend.v + i + 1, (pend.n - i - 1) * sizeof(*pend.v));
			pend.n--;
			break;
		}
	h->pending = false;
}

static void rec_append(int r, char *line, size_t len)
{
	if (r >= 0 && rec.len + len > rec.cap) {
		size_t nc = (rec.len + len) * 2 + 4096;
		char *nb = realloc(rec.buf, nc);

		if (!nb)
			r = -ENOMEM;
		else {
			rec.buf = nb;
			rec.cap = nc;
		}
	}
	if (r < 0)
		rec.broken = true;
	else {
		memcpy(rec.buf + rec.len, line, len);
		rec.len += len;
	}
	free(line);
}

/* one "fds" entry of the state for h (strings borrowed from h) */
static void fd_entry(const struct held *h, struct state_fd *sf)
{
	*sf = (struct state_fd){ .id = h->id, .dev = h->dev, .ino = h->ino, .rdev = h->rdev,
				 .created_us = h->created_us, .alias_of = h->alias_of, .group = h->group };
	snprintf(sf->instance, sizeof(sf->instance), "%s", h->inst->name);
	snprintf(sf->name, sizeof(sf->name), "%s", h->name);
	snprintf(sf->type, sizeof(sf->type), "%s", fdtype_name(h->type));
	sf->device = h->device; /* borrowed: not freed with state_doc_done */
	sf->path = h->path;
}

static void rec_add(struct held *h)
{
	struct state_fd sf;
	char *line = NULL;
	size_t len = 0;
	int r;

	fd_entry(h, &sf);
	r = state_log_add(&sf, vl.next_held_id, &line, &len);
	rec_append(r, line, len);
	h->state_gen = state_gen;
}

static void rec_del(struct held *h)
{
	char *line = NULL;
	size_t len = 0;
	int r;

	if (h->state_gen != state_gen)
		return; /* the state does not name it */
	r = state_log_del(h->id, &line, &len);
	rec_append(r, line, len);
	h->state_gen = 0;
}

static bool is_group_member(const struct held *h)
{
	return h->type == VLUD_FD_MEMFD && !h->alias_of;
}

/* Push what was added since the last commit: the memfds in one datagram per SCM_MAX_FD as a group
 * (a lone memfd as "h<id>"), the rest alone.  log: also buffer their records. */
static void flush_pending(bool log)
{
	size_t nm = 0;

	for (size_t i = 0; i < pend.n; i++)
		if (is_group_member(pend.v[i]))
			nm++;
	for (size_t i = 0; nm >= 2 && i < pend.n;) {
		int fds[VLU_MAX_FDS_PER_MSG];
		struct held *hs[VLU_MAX_FDS_PER_MSG];
		size_t k = 0;
		struct group *g;

		for (; i < pend.n && k < VLU_MAX_FDS_PER_MSG; i++)
			if (is_group_member(pend.v[i])) {
				hs[k] = pend.v[i];
				fds[k++] = pend.v[i]->fd;
			}
		if (k == 0)
			break;
		if (store_push_group(hs[0]->id, fds, k) < 0)
			continue;
		g = grp_add(hs[0]->id);
		if (g)
			g->live = (unsigned)k;
		for (size_t j = 0; j < k; j++)
			hs[j]->group = hs[0]->id;
		if (!g)
			rec.broken = true; /* no memory for the table: the group is never regrouped */
	}
	for (size_t i = 0; i < pend.n; i++) {
		struct held *h = pend.v[i];

		if (persist_storable(h->type) && !h->alias_of && !h->group)
			store_push(h); /* alone, or its group's datagram failed */
		h->pending = false;
		if (log)
			rec_add(h);
	}
	pend.n = 0;
}

/* an fd adopted from the store at start-up (held_add with its id) is a primary unless the state
 * recorded it as an alias */
static void track_adopted(struct held *h)
{
	struct group *g;

	if (!vl.fdstore || h->alias_of)
		return;
	prim_append(h);
	if (h->group) {
		g = grp_add(h->group);
		if (g)
			g->live++;
	}
}

void persist_done(void)
{
	free(prim.v);
	prim = (typeof(prim)){};
	free(grp.v);
	grp = (typeof(grp)){};
	free(pend.v);
	pend = (typeof(pend)){};
	free(rec.buf);
	rec = (typeof(rec)){};
	free(als.v);
	als = (typeof(als)){};
}

bool persist_storable(enum vlud_fd_type t)
{
	/* what live update needs, and whose close cannot block PID 1: it closes its copy with a plain
	 * close() on FDSTOREREMOVE, and for a client's socket (SO_LINGER, fds in flight), pipe or FUSE/NFS
	 * file that would be the last reference (docs/SECURITY.md) */
	return t == VLUD_FD_VHOST_VDPA || t == VLUD_FD_MEMFD || t == VLUD_FD_EVENTFD || t == VLUD_FD_IOMMUFD ||
	       t == VLUD_FD_VFIO;
}

/* p, a stored fd (a primary), is leaving (unlinked: fd.store replacing it, fd.remove, instance.release),
 * and heir shares its file: a new fd stored in its place (most often the very same file) or one of p's
 * aliases.  The heir takes over p's place at once, before the state forgets p: the store already has the
 * file under p's name, so the heir needs no datagram; the state names it with p's group (one "add"
 * record, after p's "del"), p becomes an alias of it (it leaves the store with nothing to do) and p's
 * other aliases point at it.  Recording the heir only when p is closed would leave, until then, a state
 * whose alias names an fd it has forgotten: a log that no longer applies (a new fd logged as an alias of
 * p after p's "del") or a document that does not parse (instance.release writes one without p), i.e.
 * after a kill -9 every stored fd dropped. */
static void hand_over(struct held *heir, struct held *p)
{
	bool found, named = heir->state_gen == state_gen;
	ssize_t i = prim_search(p, &found);
	struct group *g;

	if (heir->alias_of) {
		if (named)
			rec_del(heir);
		als_remove(heir);
	}
	if (heir->pending) {
		pend_remove(heir); /* no datagram: p's copy in the store is this file */
		heir->pending = false;
	}
	if (i >= 0 && found && prim.v[i] == p)
		prim.v[i] = heir; /* the same file: the same place in the order */
	else
		prim_insert(heir);
	heir->alias_of = 0;
	heir->group = p->group ? p->group : p->id;
	if (!p->group && (g = grp_add(p->id))) {
		/* p was stored alone as "h<id>": that name now stands for the heir */
		g->h_name = true;
		g->live = 1;
	}
	rec_add(heir);
	for (size_t k = 0; k < als.n; k++) {
		struct held *o = als.v[k];
		bool o_named = o->state_gen == state_gen;

		if (o->alias_of != p->id)
			continue;
		if (o_named)
			rec_del(o);
		o->alias_of = heir->id;
		if (o_named)
			rec_add(o);
	}
	p->alias_of = heir->id;
	p->group = 0;
	als_add(p);
	log_debug("fd store: h%llu (%s/%s) takes over the stored file of h%llu, which leaves",
		  (unsigned long long)heir->id, heir->inst->name, heir->name, (unsigned long long)p->id);
}

void persist_fd_add(struct held *h)
{
	struct held *p;

	if (!vl.fdstore)
		return;
	if (persist_storable(h->type)) {
		p = find_primary(h);
		if (p && p->leaving && !p->pending) {
			hand_over(h, p);
			return;
		}
		if (p) {
			h->alias_of = p->id;
			als_add(h);
			log_debug("fd store: h%llu (%s/%s) shares its file with h%llu (%s/%s): kept as an alias",
				  (unsigned long long)h->id, h->inst->name, h->name, (unsigned long long)p->id,
				  p->inst->name, p->name);
		} else
			prim_insert(h);
	}
	if (!pend_add(h)) {
		/* no memory for the list: push it now, the next document names it */
		if (persist_storable(h->type) && !h->alias_of)
			store_push(h);
		rec.broken = true;
	}
}

void persist_fd_unlink(struct held *h)
{
	if (!vl.fdstore)
		return;
	h->leaving = true;
	if (h->pending) {
		/* never pushed nor logged: relink puts it back on the list, destroy forgets it */
		pend_remove(h);
		h->pending = true; /* still owed to the store (persist_fd_relink) */
		return;
	}
	rec_del(h);
	if (persist_storable(h->type) && !h->alias_of)
		for (size_t k = 0; k < als.n; k++)
			if (als.v[k]->alias_of == h->id && !als.v[k]->leaving) {
				hand_over(als.v[k], h); /* an alias that stays stands for the file from now on */
				break;
			}
}

void persist_fd_relink(struct held *h)
{
	if (!vl.fdstore)
		return;
	h->leaving = false;
	if (h->pending) {
		h->pending = false;
		if (!pend_add(h))
			rec.broken = true;
		return;
	}
	if (h->state_gen != state_gen)
		rec_add(h);
}

static void log_flush(void);
static void regroup_shrunk(void);

/* h's aliases (h is already unlinked): the first one stands for h from now on, the rest become its
 * aliases; each changed entry is logged again (del + add).  Returns the heir or NULL. */
static struct held *pass_to_heir(const struct held *h)
{
	struct held *heir = NULL;

	for (size_t i = 0; i < als.n;) {
		struct held *o = als.v[i];
		bool named = o->state_gen == state_gen;

		if (o->alias_of != h->id || o == h) {
			i++;
			continue;
		}
		if (named)
			rec_del(o);
		if (!heir) {
			heir = o;
			o->alias_of = 0;
			/* h's copy in the store is this very file: the heir is stored under h's name (a group of
			 * one when h was alone) */
			o->group = h->group ? h->group : h->id;
			prim_insert(o);
			als.v[i] = als.v[--als.n]; /* no longer an alias; i now holds the next one */
		} else {
			o->alias_of = heir->id;
			i++;
		}
		if (named)
			rec_add(o);
	}
	return heir;
}

void persist_fd_remove(struct held *h)
{
	struct held *heir;
	struct group *g;
	char name[32];

	if (!vl.fdstore)
		return;
	if (h->pending) {
		/* added and removed within one request: neither the store nor the state ever had it */
		pend_remove(h);
		if (h->alias_of)
			als_remove(h);
		if (persist_storable(h->type) && !h->alias_of)
			prim_remove(h);
		return;
	}
	rec_del(h);
	if (h->alias_of)
		als_remove(h);
	if (h->alias_of || !persist_storable(h->type)) {
		log_flush();
		return;
	}
	prim_remove(h);
	heir = pass_to_heir(h);
	log_flush(); /* the state forgets h (and names its heir) before the store changes */
	g = h->group ? grp_find(h->group) : NULL;
	if (g && heir)
		return; /* the group's copy of h's file now stands for the heir */
	if (g) {
		g->shrunk = true; /* its copy stays in the store until the rest moves (regroup()) */
		if (--g->live == 0) {
			group_name(g, name, sizeof(name));
			store_remove_name(name);
			grp_del(g);
		}
		return;
	}
	if (heir && (g = grp_add(h->id))) {
		/* "h<id>" stays in the store for the heir: no datagram, nothing for PID 1 to compare */
		g->h_name = true;
		g->live = 1;
		return;
	}
	snprintf(name, sizeof(name), "h%llu", (unsigned long long)h->id);
	store_remove_name(name);
	if (heir && !heir->pending) {
		heir->group = 0;
		store_push(heir); /* after the removal: the store folds an identical file into the stored one */
	}
}

void persist_fds_commit(void)
{
	if (!vl.fdstore)
		return;
	flush_pending(true);
	log_flush();
	regroup_shrunk();
}

static bool frozen; /* persist_freeze(): the daemon is exiting */

void persist_freeze(void)
{
	frozen = true;
}

bool persist_frozen(void)
{
	return frozen;
}

int persist_store_barrier(void)
{
	int r;

	if (!vl.fdstore)
		return 0;
	/* BARRIER=1: returns once the service manager has handled every notification sent before it.  A
	 * signal (SIGCHLD of a spawned successor or previous binary that died) interrupts the wait: ask
	 * again, within the same 2 s (the chaos soak found a reopen refused EBUSY after an interrupted
	 * barrier: the store's copy of the released device was still open) */
	{
		int64_t end = now_monotonic_us() + 2000000, left;

		do {
			left = end - now_monotonic_us();
			r = sd_notify_barrier(0, (uint64_t)(left > 0 ? left : 1));
		} while (r == -EINTR && left > 0);
	}
	if (r < 0)
		log_warning("fd store: waiting for the service manager (BARRIER=1): %s", strerror(-r));
	return r < 0 ? r : 0;
}

/* what build_doc allocated (the rest is borrowed from the live tables) */
static void doc_free(struct state_doc *doc)
{
	for (size_t i = 0; doc->instances && i < doc->n_instances; i++) {
		free(doc->instances[i].last_update);
		free(doc->instances[i].mappings);
	}
	free(doc->instances);
	free(doc->fds);
	free(doc->updates);
}

static int build_doc(struct state_doc *doc)
{
	struct list *ip, *it, *p, *t;
	size_t ni = 0, nf = 0;

	*doc = (struct state_doc){ .next_id = vl.next_held_id, .written_us = now_realtime_us() };
	doc->instances = calloc(vl.n_instances ? vl.n_instances : 1, sizeof(*doc->instances));
	doc->fds = calloc(vl.n_held ? vl.n_held : 1, sizeof(*doc->fds));
	doc->updates = calloc(vl.n_instances ? vl.n_instances : 1, sizeof(*doc->updates));
	if (!doc->instances || !doc->fds || !doc->updates)
		return -ENOMEM;
	list_for_each_safe(ip, it, &vl.instances) {
		struct instance *inst = list_entry(ip, struct instance, link);
		struct state_instance *si = &doc->instances[ni++];

		snprintf(si->name, sizeof(si->name), "%s", inst->name);
		si->pid = inst->pid;
		si->uid = inst->uid;
		si->gid = inst->gid;
		si->registered_us = inst->registered_us;
		si->orphaned = inst->state == INSTANCE_ORPHANED;
		si->orphaned_us = inst->orphaned_us;
		si->last_update = update_persist_last(inst); /* NULL: none (or no memory: not kept) */
		si->mappings = update_persist_mappings(inst);
		si->reserved = update_persist_reserved(inst);
		si->held = update_persist_held(inst);
		doc->n_instances = ni; /* doc_free frees the verdicts so far if the next step fails */
		if (update_persist_record(inst, &doc->updates[doc->n_updates]))
			doc->n_updates++;
		list_for_each_safe(p, t, &inst->held) {
			struct held *h = list_entry(p, struct held, link);

			fd_entry(h, &doc->fds[nf++]);
			h->state_gen = state_gen + 1; /* the new document names it, once written */
		}
	}
	doc->n_instances = ni;
	doc->n_fds = nf;
	return 0;
}

/* The memfd layout (state.h): index page at 0, two document slots after it.  cur is the slot the
 * index points at; a new document goes to the other one, then the index is flipped. */
static struct {
	uint64_t off[2], cap[2];
	int cur; /* -1: none yet */
	uint64_t end; /* first free byte (page aligned) after everything allocated */
} slots = { .cur = -1, .end = VLUD_STATE_INDEX_SIZE };

static uint64_t page_align(uint64_t x)
{
	return (x + VLUD_STATE_INDEX_SIZE - 1) / VLUD_STATE_INDEX_SIZE * VLUD_STATE_INDEX_SIZE;
}

static int pwrite_all(int fd, const char *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pwrite(fd, buf + done, len - done, (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		done += (size_t)n;
	}
	return 0;
}

/* The log region (state.h "Log records"): records since the current document, lg.len bytes at lg.off.
 * cap 0: none allocated yet (the next document allocates it). */
static struct {
	uint64_t off, cap, len;
} lg;

#define LOG_MIN (64u * 1024)

static int write_index(void)
{
	char index[VLUD_STATE_INDEX_SIZE];
	int r;

	r = state_index_serialize_log(slots.off[slots.cur], vl.state_len, lg.off, lg.len, index);
	/* one page at offset 0: a signal cannot cut it, so the index names either the old or the new state */
	if (r >= 0)
		r = pwrite_all(vl.state_fd, index, sizeof(index), 0);
	return r;
}

/* Append the buffered records of this request: one pwrite, then the index.  A log that would outgrow
 * its region (four times the document, at least LOG_MIN) is compacted: a new document instead. */
static void log_flush(void)
{
	uint64_t old_len = lg.len;
	int r;

	if (vl.state_fd < 0 || frozen || (!rec.len && !rec.broken))
		return;
	if (rec.broken || slots.cur < 0 || lg.cap == 0 || lg.len + rec.len > lg.cap) {
		persist_state_write(); /* names everything live, empties rec */
		return;
	}
	r = pwrite_all(vl.state_fd, rec.buf, rec.len, lg.off + lg.len);
	if (r >= 0) {
		lg.len += rec.len;
		r = write_index();
	}
	rec.len = 0;
	if (r < 0) {
		log_error("state: appending to the log: %s; writing the whole state instead", strerror(-r));
		lg.len = old_len;
		persist_state_write();
	}
}

/* Groups some of whose fds went: the rest (a fresh open of each memfd, which systemd does not fold
 * into the old copies) go to the store as a new group, the state learns it, then the old group leaves
 * the store.  If a fresh open fails, the group stays as it is (the store keeps the gone copies until
 * the whole group goes). */
static void regroup(struct group *g)
{
	struct held *hs[VLU_MAX_FDS_PER_MSG];
	int fds[VLU_MAX_FDS_PER_MSG];
	uint64_t ids[VLU_MAX_FDS_PER_MSG], old = g->id, nid;
	struct list *ip, *it, *p, *t;
	char name[32], *line = NULL;
	size_t n = 0, k, len = 0;
	int r;

	g->shrunk = false;
	list_for_each_safe(ip, it, &vl.instances) {
		struct instance *inst = list_entry(ip, struct instance, link);

		list_for_each_safe(p, t, &inst->held) {
			struct held *h = list_entry(p, struct held, link);

			if (h->group == old && !h->alias_of && n < VLU_MAX_FDS_PER_MSG)
				hs[n++] = h;
		}
	}
	if (n == 0) {
		group_name(g, name, sizeof(name));
		store_remove_name(name);
		grp_del(g);
		return;
	}
	for (k = 0; k < n; k++) {
		char path[64];

		snprintf(path, sizeof(path), "/proc/self/fd/%d", hs[k]->fd);
		fds[k] = open(path, O_RDWR | O_CLOEXEC);
		if (fds[k] < 0)
			fds[k] = open(path, O_RDONLY | O_CLOEXEC);
		if (fds[k] < 0)
			break;
		ids[k] = hs[k]->id;
	}
	if (k < n) {
		log_warning("fd store: re-opening memfd h%llu for group g%llu: %m; the group stays as it is",
			    (unsigned long long)hs[k]->id, (unsigned long long)old);
		close_many(fds, k);
		return;
	}
	nid = vl.next_held_id++;
	r = store_push_group(nid, fds, n);
	close_many(fds, n);
	if (r < 0)
		return;
	group_name(g, name, sizeof(name)); /* the old name, removed below */
	g->h_name = false;
	g->id = nid;
	g->live = (unsigned)n;
	for (k = 0; k < n; k++)
		hs[k]->group = nid;
	r = state_log_group(nid, ids, n, vl.next_held_id, &line, &len);
	rec_append(r, line, len);
	log_flush();
	store_remove_name(name);
}

static void regroup_shrunk(void)
{
	bool again = true;

	/* regroup() clears shrunk first and may delete or move entries: start over after each */
	while (again) {
		again = false;
		for (size_t i = 0; i < grp.n; i++)
			if (grp.v[i].shrunk) {
				regroup(&grp.v[i]);
				again = true;
				break;
			}
	}
}

/* 0, or -errno when the document could not be written (logged) */
static int state_write(void)
{
	struct state_doc doc;
	_cleanup_free_ char *buf = NULL;
	uint64_t old_log_off = lg.off, old_log_cap = lg.cap, want;
	size_t len;
	int r, s;

	if (vl.state_fd < 0 || frozen)
		return 0;
	flush_pending(false); /* into the store before the state names them */
	rec.len = 0;	      /* the document says it all */
	rec.broken = false;
	r = build_doc(&doc);
	if (r >= 0) {
		r = state_serialize(&doc, &buf, &len);
		/* state.c is pure (no logging): its json-c allocation failures come back as -ENOMEM and
		 * follow the daemon's policy here (docs/DESIGN.md "Out of memory (json-c)") */
		if (r == -ENOMEM)
			json_oom("state document");
	}
	doc_free(&doc);
	if (r < 0) {
		log_error("state: cannot serialise: %s", strerror(-r));
		return r;
	}
	s = slots.cur == 0 ? 1 : 0;
	if (len > slots.cap[s]) {
		/* (re)allocate this slot at the end, with room to grow */
		slots.off[s] = slots.end;
		slots.cap[s] = page_align(2 * (uint64_t)len);
		slots.end = slots.off[s] + slots.cap[s];
	}
	/* the log after this document: four times its size (compaction amortises to O(1) per change); a
	 * region that is too small moves to the end (the index names the old one until the flip) */
	want = page_align(4 * (uint64_t)len + LOG_MIN);
	if (lg.cap < want) {
		lg.off = slots.end;
		lg.cap = want;
		slots.end = lg.off + lg.cap;
	}
	r = pwrite_all(vl.state_fd, buf, len, slots.off[s]);
	if (r >= 0) {
		int cur = slots.cur;
		uint64_t old_state_len = vl.state_len, old_lg_len = lg.len;

		slots.cur = s;
		vl.state_len = len;
		lg.len = 0;
		r = write_index();
		if (r < 0) {
			slots.cur = cur;
			vl.state_len = old_state_len;
			lg.len = old_lg_len;
		}
	}
	if (r < 0) {
		log_error("state: write: %s", strerror(-r));
		return r;
	}
	state_gen++;
	if (old_log_cap && old_log_off != lg.off)
		(void)fallocate(vl.state_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)old_log_off,
				(off_t)old_log_cap);
	regroup_shrunk();
	return 0;
}

int64_t persist_write_us;

void persist_state_write(void)
{
	(void)persist_state_write_checked();
}

int persist_state_write_checked(void)
{
	int64_t t0;
	int r;

	if (vl.state_fd < 0)
		return 0; /* no fd store: nothing outlives this process, so there is nothing to record */
	if (frozen)
		return -ESHUTDOWN;
	t0 = now_monotonic_us();
	r = state_write();
	persist_write_us += now_monotonic_us() - t0;
	return r;
}

/* ---- start-up ---- */

struct candidate {
	int fd;
	uint64_t id;	/* "h<id>", or 0 */
	uint64_t group; /* "g<group>", or 0 */
	struct stat st; /* group members: told apart by identity */
	int type;	/* fdtype_detect(), once per fd; -errno: matches nothing */
	bool used;
};

static bool is_listener(int fd, bool *ret_ok)
{
	int v = 0, dom = 0, type = 0;
	socklen_t l = sizeof(v);
	struct stat st;

	*ret_ok = false;
	if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode))
		return false;
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &l) < 0 || !v)
		return false;
	l = sizeof(dom);
	(void)getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &l);
	l = sizeof(type);
	(void)getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l);
	*ret_ok = dom == AF_UNIX && type == SOCK_SEQPACKET;
	return true;
}

static int pread_all(int fd, char *buf, size_t len, uint64_t off)
{
	size_t done = 0;
	ssize_t n;

	while (done < len) {
		n = pread(fd, buf + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EINVAL;
		done += (size_t)n;
	}
	return 0;
}

/* Read the current state of an adopted state memfd: the index page, its document (*ret, NUL-terminated)
 * and its log (*ret_log, may be empty). */
static int read_state(int fd, char **ret, size_t *ret_len, char **ret_log, size_t *ret_log_len)
{
	char index[VLUD_STATE_INDEX_SIZE];
	uint64_t off, len, loff, llen;
	_cleanup_free_ char *buf = NULL, *lbuf = NULL;
	struct stat st;
	ssize_t n;
	int r;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	do
		n = pread(fd, index, sizeof(index), 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	r = state_index_parse_log(index, (size_t)n, &off, &len, &loff, &llen);
	if (r < 0)
		return r;
	if (off + len > (uint64_t)st.st_size || (llen && loff + llen > (uint64_t)st.st_size))
		return -EINVAL;
	buf = malloc(len + 1);
	lbuf = malloc(llen + 1);
	if (!buf || !lbuf)
		return -ENOMEM;
	r = pread_all(fd, buf, len, off);
	if (r >= 0)
		r = pread_all(fd, lbuf, llen, loff);
	if (r < 0)
		return r;
	buf[len] = '\0';
	lbuf[llen] = '\0';
	/* keep writing after what is there: the document and log in use stay untouched until the next
	 * document is written, which goes to a new slot at the end (so does its log) */
	slots.cur = 0;
	slots.off[0] = off;
	slots.cap[0] = page_align(len);
	slots.off[1] = slots.cap[1] = 0;
	slots.end = page_align((uint64_t)st.st_size);
	if (slots.end < off + slots.cap[0])
		slots.end = off + slots.cap[0];
	if (llen && slots.end < page_align(loff + llen))
		slots.end = page_align(loff + llen);
	lg = (typeof(lg)){};
	*ret = TAKE_PTR(buf);
	*ret_len = len;
	*ret_log = TAKE_PTR(lbuf);
	*ret_log_len = llen;
	return 0;
}

static void drop(int fd, const char *name, const char *why)
{
	log_warning("fd store: dropping '%s': %s", name, why);
	safe_close(fd);
	store_remove_name(name);
	vl.dropped_fds++;
}

/* The fds systemd passed (LISTEN_FDS), sorted by name.  On failure, passed_done() closes what was not
 * taken yet. */
struct passed {
	char **names;
	int n;
	struct candidate *cand; /* "h<id>": held fds from the store, adopted if the state lists them */
	size_t n_cand;
	int state_fd;		/* "state": the state memfd, or -EBADF */
};

static void passed_done(struct passed *p, bool failed)
{
	if (failed) {
		for (size_t k = 0; k < p->n_cand; k++)
			if (!p->cand[k].used)
				safe_close(p->cand[k].fd);
		p->state_fd = safe_close(p->state_fd);
	}
	free(p->cand);
	if (p->names)
		for (int i = 0; i < p->n; i++)
			free(p->names[i]);
	free(p->names);
}

/* A passed listening socket becomes vl.listen_fd (the first one; others are closed).  -EPROTOTYPE when
 * it is not an AF_UNIX SOCK_SEQPACKET listener. */
static int use_listener(int fd, const char *name, bool ok)
{
	int fl;

	if (!ok) {
		log_error("passed socket '%s' (fd %d) is not an AF_UNIX SOCK_SEQPACKET listener", name, fd);
		return -EPROTOTYPE;
	}
	if (vl.listen_fd >= 0) {
		log_warning("ignoring extra listening socket '%s' (fd %d)", name, fd);
		safe_close(fd);
		return 0;
	}
	vl.listen_fd = fd;
	vl.listen_activated = true;
	fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		(void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	log_info("using the activated socket '%s' (fd %d)", name, fd);
	return 0;
}

/* The one probe of a stored fd: its type and fstat identity, compared with the state's record later
 * (same_identity()) without further system calls.  A failed probe matches nothing: the fd is dropped. */
static void probe_candidate(struct candidate *c)
{
	c->type = fdtype_detect(c->fd, vl.vdpa_major, &c->st);
	if (c->type < 0)
		c->st = (struct stat){};
}

/* sd_listen_fds_with_names(1, ...) (the protocol of sd_listen_fds(3): LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES,
 * unset afterwards), with one close_range(CLOSE_RANGE_CLOEXEC) over the passed fds instead of libsystemd's
 * fcntl() pair per fd (2000 system calls at a restart with 1000 held fds).  n, 0 (none for us) or -errno. */
static int listen_fds_with_names(char ***ret_names)
{
	const char *e_pid = getenv("LISTEN_PID"), *e_n = getenv("LISTEN_FDS"), *e_names = getenv("LISTEN_FDNAMES");
	_cleanup_free_ char *names_copy = e_names ? strdup(e_names) : NULL;
	unsigned long pid, n = 0, k = 0;
	char *end, **names = NULL;
	int r = 0;

	*ret_names = NULL;
	if (e_names && !names_copy) {
		r = -ENOMEM;
		goto out;
	}
	if (!e_pid || !e_n)
		goto out;
	errno = 0;
	pid = strtoul(e_pid, &end, 10);
	if (errno || end == e_pid || *end || pid == 0 || pid > INT_MAX) {
		r = -EINVAL;
		goto out;
	}
	if ((pid_t)pid != getpid())
		goto out; /* not for us */
	errno = 0;
	n = strtoul(e_n, &end, 10);
	if (errno || end == e_n || *end || n == 0 || n > (unsigned long)INT_MAX - SD_LISTEN_FDS_START) {
		r = -EINVAL;
		goto out;
	}
	if (close_range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + (unsigned)n - 1, CLOSE_RANGE_CLOEXEC) < 0)
		for (unsigned long i = 0; i < n; i++) /* Linux < 5.11 */
			if (fcntl(SD_LISTEN_FDS_START + (int)i, F_SETFD, FD_CLOEXEC) < 0) {
				r = -errno;
				goto out;
			}
	names = calloc(n + 1, sizeof(*names));
	if (!names) {
		r = -ENOMEM;
		goto out;
	}
	if (names_copy && *names_copy) {
		char *save = NULL;

		/* one name per fd, ':'-separated (empty names are not split out, as strv_split() does not) */
		for (char *t = strtok_r(names_copy, ":", &save); t; t = strtok_r(NULL, ":", &save)) {
			if (k == n) {
				k++;
				break;
			}
			if (!(names[k++] = strdup(t))) {
				r = -ENOMEM;
				goto out;
			}
		}
		if (k != 0 && k != n) {
			r = -EINVAL;
			goto out;
		}
	}
	if (k == 0) /* no names: "unknown", as libsystemd says */
		for (; k < n; k++)
			if (!(names[k] = strdup("unknown"))) {
				r = -ENOMEM;
				goto out;
			}
	r = (int)n;
	*ret_names = TAKE_PTR(names);
out:
	if (names)
		for (unsigned long i = 0; i < n; i++)
			free(names[i]);
	free(names);
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	return r;
}

/* Sort LISTEN_FDS/LISTEN_FDNAMES: the listening socket (any name), "state", "h<id>"; anything else is
 * dropped.  0 or -errno (fatal). */
static int sort_passed(struct passed *p)
{
	p->n = listen_fds_with_names(&p->names);
	if (p->n < 0) {
		log_error("LISTEN_FDS: %s", strerror(-p->n));
		return p->n;
	}
	p->cand = calloc(p->n > 0 ? (size_t)p->n : 1, sizeof(*p->cand));
	if (!p->cand)
		return -ENOMEM;
	for (int i = 0; i < p->n; i++) {
		int fd = SD_LISTEN_FDS_START + i, r;
		const char *name = p->names && p->names[i] ? p->names[i] : "unknown";
		unsigned long long id;
		char tail;
		bool ok;

		/* sd_listen_fds() has set FD_CLOEXEC on every passed fd */
		if (strcmp(name, "state") == 0 && p->state_fd < 0) {
			p->state_fd = fd;
			continue;
		}
		if (sscanf(name, "h%llu%c", &id, &tail) == 1 && id > 0) {
			struct candidate *c = &p->cand[p->n_cand++];

			/* also the group of one an heir took over (persist_fd_remove()) */
			*c = (struct candidate){ .fd = fd, .id = id, .group = id };
			probe_candidate(c);
			continue;
		}
		if (sscanf(name, "g%llu%c", &id, &tail) == 1 && id > 0) {
			struct candidate *c = &p->cand[p->n_cand++];

			*c = (struct candidate){ .fd = fd, .group = id };
			probe_candidate(c);
			continue;
		}
		if (is_listener(fd, &ok)) {
			r = use_listener(fd, name, ok);
			if (r < 0)
				return r;
			continue;
		}
		drop(fd, name, "unknown name");
	}
	return 0;
}

/* The state's instances come back orphaned. */
static int restore_instances(const struct state_doc *doc)
{
	for (size_t i = 0; i < doc->n_instances; i++) {
		const struct state_instance *si = &doc->instances[i];
		struct instance *inst;

		if (instance_restore(si->name, si->pid, si->uid, si->gid, si->registered_us,
				     si->orphaned ? si->orphaned_us : 0,
				     si->orphaned ? "orphaned before restart" : "daemon restarted", &inst) < 0)
			return -ENOMEM;
		vl.restored_instances++;
	}
	return 0;
}

/* Is the candidate what the state recorded (type, and fstat identity dev, ino, rdev)?  Its probe was made
 * once, in sort_passed(). */
static bool same_identity(const struct candidate *c, const struct state_fd *sf)
{
	return c->type >= 0 && strcmp(fdtype_name(c->type), sf->type) == 0 && (uint64_t)c->st.st_dev == sf->dev &&
	       (uint64_t)c->st.st_ino == sf->ino && (uint64_t)c->st.st_rdev == sf->rdev;
}

/* The candidates in the order of their lookup key (group, dev, ino, rdev), then their place in
 * LISTEN_FDS: finding a state entry's fd is a binary search, not a walk over every candidate. */
static int cand_key_cmp(const struct candidate *c, uint64_t group, uint64_t dev, uint64_t ino, uint64_t rdev)
{
	if (c->group != group)
		return c->group < group ? -1 : 1;
	if ((uint64_t)c->st.st_dev != dev)
		return (uint64_t)c->st.st_dev < dev ? -1 : 1;
	if ((uint64_t)c->st.st_ino != ino)
		return (uint64_t)c->st.st_ino < ino ? -1 : 1;
	if ((uint64_t)c->st.st_rdev != rdev)
		return (uint64_t)c->st.st_rdev < rdev ? -1 : 1;
	return 0;
}

static int cand_order(const void *x, const void *y)
{
	const struct candidate *a = *(struct candidate *const *)x, *b = *(struct candidate *const *)y;
	int c = cand_key_cmp(a, b->group, (uint64_t)b->st.st_dev, (uint64_t)b->st.st_ino, (uint64_t)b->st.st_rdev);

	return c ? c : a < b ? -1 : a > b ? 1 : 0;
}

/* first index in the sorted order whose key is >= (group, dev, ino, rdev) */
static size_t cand_lower(struct candidate *const *v, size_t n, uint64_t group, uint64_t dev, uint64_t ino,
			 uint64_t rdev)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (cand_key_cmp(v[mid], group, dev, ino, rdev) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The unused candidate for a state entry (the first in LISTEN_FDS order): a group member by its group
 * and identity, a lone fd ("h<id>", whose group is its id) by its id. */
static struct candidate *cand_find(struct candidate *const *v, size_t n, const struct state_fd *sf)
{
	struct candidate *best = NULL;

	if (sf->group) {
		for (size_t k = cand_lower(v, n, sf->group, sf->dev, sf->ino, sf->rdev);
		     k < n && cand_key_cmp(v[k], sf->group, sf->dev, sf->ino, sf->rdev) == 0; k++)
			if (!v[k]->used)
				return v[k];
		return NULL;
	}
	for (size_t k = cand_lower(v, n, sf->id, 0, 0, 0); k < n && v[k]->group == sf->id; k++)
		if (!v[k]->used && v[k]->id == sf->id && (!best || v[k] < best))
			best = v[k];
	return best;
}

/* The state's stored held fds (not aliases): adopted from the candidates if their identity matches,
 * else dropped; a state entry without its fd is lost.  0 or -errno (fatal). */
static int adopt_stored(const struct state_doc *doc, struct passed *p)
{
	_cleanup_free_ struct candidate **order = calloc(p->n_cand ? p->n_cand : 1, sizeof(*order));
	struct instance *inst = NULL;

	if (!order)
		return -ENOMEM;
	for (size_t k = 0; k < p->n_cand; k++)
		order[k] = &p->cand[k];
	qsort(order, p->n_cand, sizeof(*order), cand_order);
	for (size_t i = 0; i < doc->n_fds; i++) {
		const struct state_fd *sf = &doc->fds[i];
		struct candidate *cd;
		struct held *adopted;
		struct stat st;
		char nm[32];
		int r;

		if (sf->alias_of)
			continue; /* adopt_aliases(), once every stored fd is in */
		if (!inst || strcmp(inst->name, sf->instance) != 0)
			inst = instance_find(sf->instance); /* an instance's fds come one after the other */
		cd = cand_find(order, p->n_cand, sf);
		if (!cd && inst && fdtype_from_name(sf->type) >= 0 &&
		    !persist_storable((enum vlud_fd_type)fdtype_from_name(sf->type))) {
			log_info("state: fd h%llu (%s/%s), a %s, is not kept across a restart of vlud (only devices, "
				 "memfds and eventfds go to the fd store)",
				 (unsigned long long)sf->id, sf->instance, sf->name, sf->type);
			vl.dropped_fds++;
			continue;
		}
		if (!cd || !inst) {
			log_warning("state: fd h%llu (%s/%s) is missing from the fd store", (unsigned long long)sf->id,
				    sf->instance, sf->name);
			vl.lost_fds++;
			continue;
		}
		cd->used = true;
		if (cd->id)
			snprintf(nm, sizeof(nm), "h%llu", (unsigned long long)cd->id);
		else
			snprintf(nm, sizeof(nm), "g%llu", (unsigned long long)cd->group);
		if (!same_identity(cd, sf) && !cd->id) {
			/* removing its name would remove the group's other fds too: regroup() moves them */
			struct group *g = grp_add(sf->group);

			log_warning("fd store: dropping an fd of '%s': identity differs from the state's %s/%s (%s)", nm,
				    sf->instance, sf->name, sf->type);
			safe_close(cd->fd);
			if (g)
				g->shrunk = true;
			vl.lost_fds++;
			continue;
		}
		if (!same_identity(cd, sf)) {
			char why[256];

			snprintf(why, sizeof(why), "identity differs from the state's %s/%s (%s)", sf->instance,
				 sf->name, sf->type);
			drop(cd->fd, nm, why);
			vl.lost_fds++;
			continue;
		}
		st = cd->st;
		r = held_add(inst, sf->name, cd->fd, (enum vlud_fd_type)cd->type, &st, sf->id, sf->created_us, sf->device,
			     sf->path, &adopted);
		if (r < 0)
			return r;
		adopted->group = sf->group;
		track_adopted(adopted);
		if (sf->group && cd->id) {
			struct group *g = grp_find(sf->group);

			if (g)
				g->h_name = true;
		}
		vl.adopted_fds++;
	}
	return 0;
}

/* The state's aliases: each a dup of the adopted fd it shares its file with.  0 or -errno (fatal). */
static int adopt_aliases(const struct state_doc *doc)
{
	for (size_t i = 0; i < doc->n_fds; i++) {
		const struct state_fd *sf = &doc->fds[i];
		struct instance *inst = instance_find(sf->instance);
		struct held *p = sf->alias_of ? held_find_id(sf->alias_of) : NULL;
		struct stat st = {};
		int fd, r;

		if (!sf->alias_of)
			continue;
		if (!p || !inst) {
			log_warning("state: fd h%llu (%s/%s) was an alias of h%llu, which is gone",
				    (unsigned long long)sf->id, sf->instance, sf->name,
				    (unsigned long long)sf->alias_of);
			vl.lost_fds++;
			continue;
		}
		/* a dup of the adopted fd it names: the same open file, already probed; only the state's record
		 * is compared */
		if (strcmp(fdtype_name(p->type), sf->type) != 0 || p->dev != sf->dev || p->ino != sf->ino ||
		    p->rdev != sf->rdev) {
			log_warning("state: alias h%llu (%s/%s) does not match h%llu: dropped",
				    (unsigned long long)sf->id, sf->instance, sf->name, (unsigned long long)sf->alias_of);
			vl.lost_fds++;
			continue;
		}
		fd = fcntl(p->fd, F_DUPFD_CLOEXEC, 3);
		if (fd < 0)
			return -errno;
		st.st_dev = (dev_t)p->dev;
		st.st_ino = (ino_t)p->ino;
		st.st_rdev = (dev_t)p->rdev;
		r = held_add(inst, sf->name, fd, p->type, &st, sf->id, sf->created_us, sf->device, sf->path, &p);
		if (r < 0)
			return r;
		p->alias_of = sf->alias_of;
		if (vl.fdstore)
			als_add(p);
		vl.adopted_fds++;
	}
	return 0;
}

static void drop_unclaimed(struct passed *p);

/* Restore from the passed state memfd: instances, held fds, the live updates the previous vlud was
 * running and the last verdicts.  An unreadable state is not fatal: every stored fd is then
 * dropped (drop_unclaimed()).  0 or -errno (fatal). */
static int restore_from_state(struct passed *p)
{
	_cleanup_free_ char *buf = NULL, *lbuf = NULL;
	struct state_doc doc = {};
	size_t len = 0, llen = 0;
	int r;

	r = read_state(p->state_fd, &buf, &len, &lbuf, &llen);
	if (r >= 0)
		r = state_parse(buf, len, &doc);
	if (r >= 0)
		r = state_log_apply(&doc, lbuf, llen);
	if (r < 0) {
		log_error("state memfd unreadable (%s): dropping every stored fd", strerror(-r));
		state_doc_done(&doc);
		return 0;
	}
	vl.state_len = len;
	if (doc.next_id > vl.next_held_id)
		vl.next_held_id = doc.next_id;
	r = restore_instances(&doc);
	if (r >= 0)
		r = adopt_stored(&doc, p);
	if (r >= 0)
		r = adopt_aliases(&doc);
	prim_sort(); /* the adopted primaries, once (not a search per fd) */
	/* the stored fds the state does not name leave first: update_restore() reopens the devices a path-C
	 * claim had released, and one such fd may be the killed vlud's reopen of that very node, stored
	 * before the state naming it was written (chaos soak, stock, seed 20261203 kill 1: the reopen met
	 * EBUSY and the device was lost) */
	if (r >= 0) {
		drop_unclaimed(p);
		update_restore(&doc);
	}
	state_doc_done(&doc);
	return r;
}

/* Stored fds the state does not list (or that restore_from_state() did not take) leave the store.  A
 * group some of whose fds were adopted keeps its name (removing it would remove those too): the rest
 * is closed here and regroup() moves the adopted ones to a new group. */
static void drop_unclaimed(struct passed *p)
{
	for (size_t k = 0; k < p->n_cand; k++) {
		struct candidate *c = &p->cand[k];
		struct group *g;
		char nm[32];
		bool seen = false;

		if (c->used)
			continue;
		c->used = true;
		if (c->id) {
			snprintf(nm, sizeof(nm), "h%llu", (unsigned long long)c->id);
			drop(c->fd, nm, "not in the state");
			continue;
		}
		snprintf(nm, sizeof(nm), "g%llu", (unsigned long long)c->group);
		g = grp_find(c->group);
		for (size_t j = 0; j < k; j++)
			if (p->cand[j].group == c->group && !p->cand[j].id)
				seen = seen || p->cand[j].fd == -EBADF;
		if (g) {
			g->shrunk = true;
			log_warning("fd store: dropping one fd of '%s': not in the state", nm);
			safe_close(c->fd);
			vl.dropped_fds++;
		} else if (!seen) {
			drop(c->fd, nm, "not in the state");
		} else {
			safe_close(c->fd);
			vl.dropped_fds++;
		}
		c->fd = -EBADF; /* closed: marks its group as removed already */
	}
}

/* With the fd store: keep the passed state memfd, or create and store a new one, and write the state
 * into it.  Without: a passed one is closed (nothing to keep it in).  0 or -errno (fatal). */
static int setup_state_memfd(struct passed *p)
{
	int r;

	if (!vl.fdstore) {
		p->state_fd = safe_close(p->state_fd);
		return 0;
	}
	if (p->state_fd < 0) {
		p->state_fd = memfd_create("vlud-state", MFD_CLOEXEC);
		if (p->state_fd < 0) {
			r = -errno;
			log_error("memfd_create: %m");
			return r;
		}
		vl.state_len = 0;
		r = sd_pid_notify_with_fds(0, 0, "FDSTORE=1\nFDNAME=state\nFDPOLL=0", &p->state_fd, 1);
		if (r <= 0)
			log_warning("fd store: storing the state memfd: %s",
				    r < 0 ? strerror(-r) : "NOTIFY_SOCKET not set");
	}
	vl.state_fd = TAKE_FD(p->state_fd);
	persist_state_write();
	return 0;
}

int persist_start(void)
{
	struct passed p = { .state_fd = -EBADF };
	int r;

	vl.fdstore = getenv("NOTIFY_SOCKET") != NULL;
	vl.state_fd = -EBADF;

	r = sort_passed(&p);
	if (r >= 0 && p.state_fd >= 0)
		r = restore_from_state(&p);
	if (r >= 0) {
		drop_unclaimed(&p);
		r = setup_state_memfd(&p);
	}
	if (r >= 0 && p.n > 0)
		log_info("start-up: %u instances restored, %u fds adopted, %u dropped, %u lost", vl.restored_instances,
			 vl.adopted_fds, vl.dropped_fds, vl.lost_fds);
	passed_done(&p, r < 0);
	return r;
}
