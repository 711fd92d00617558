/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * conn.c - accepting, reading, writing and closing client connections.
 *
 * A killed connection stays in vl.conns (marked dead, watchers stopped,
 * socket closed) until the reaper (an ev_idle) frees it, so that lists are
 * never unlinked under an iterating caller (events are emitted from deep
 * inside handlers and destructors).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "commands.h"
#include "config.h"
#include "closer.h"
#include "conn.h"
#include "instance.h"
#include "json-oom.h"
#include "vlu-proto.h"

/* fds held by queued replies of one client that does not read (duplicates of held fds) */
#define MAX_QUEUED_FDS 1024

struct outmsg {
	struct list link;
	char *buf;
	size_t len;
	size_t nfds;
	int fds[]; /* owned duplicates */
};

static ev_timer accept_pause;

/* What a connection's fds belong to, for the closer's log. */
static const char *conn_owner(const struct conn *c, char *buf, size_t len)
{
	snprintf(buf, len, "connection %llu (pid %d)", (unsigned long long)c->id, (int)c->cred.pid);
	return buf;
}

unsigned conn_count_uid(uid_t uid)
{
	struct list *p, *t;
	unsigned n = 0;

	list_for_each_safe(p, t, &vl.conns) {
		struct conn *c = list_entry(p, struct conn, link);

		if (!c->dead && c->cred.uid == uid)
			n++;
	}
	return n;
}

/* output queued for every connection of uid */
static size_t output_of_uid(uid_t uid)
{
	struct list *p, *t;
	size_t n = 0;

	list_for_each_safe(p, t, &vl.conns) {
		struct conn *c = list_entry(p, struct conn, link);

		if (!c->dead && c->cred.uid == uid)
			n += c->out_bytes;
	}
	return n;
}

static void outmsg_free(struct conn *c, struct outmsg *m)
{
	char own[64];

	list_del(&m->link);
	/* duplicates of held fds, the last references once the held fd was removed: the uid's lane */
	closer_close_client(c->cred.uid, conn_owner(c, own, sizeof(own)), m->fds, m->nfds);
	free(m->buf);
	free(m);
}

void conn_kill(struct conn *c, const char *why)
{
	struct list *p, *t;

	if (!c || c->dead)
		return;
	c->dead = true;
	log_debug("connection %llu (pid %d uid %u) closed: %s", (unsigned long long)c->id, (int)c->cred.pid,
		  (unsigned)c->cred.uid, why);
	ev_io_stop(vl.loop, &c->io_in);
	ev_io_stop(vl.loop, &c->io_out);
	ev_timer_stop(vl.loop, &c->handshake);
	ev_timer_stop(vl.loop, &c->idle);
	list_for_each_safe(p, t, &c->outq)
		outmsg_free(c, list_entry(p, struct outmsg, link));
	c->out_bytes = 0;
	c->out_fds = 0;
	ev_timer_stop(vl.loop, &c->backlog);
	/* the socket's receive queue may still carry the peer's fds (in flight): its close releases them,
	 * and their close can block */
	{
		char own[64];

		closer_close_client_fd(c->cred.uid, conn_owner(c, own, sizeof(own)), TAKE_FD(c->fd));
	}
	c->pidfd = safe_close(c->pidfd);
	c->subscribed = false;
	if (c->inst)
		instance_orphan(c->inst, vl.stopping ? "daemon stopping" : "connection closed");
	c->inst = NULL;
	vl.n_conns--;
	ev_idle_start(vl.loop, &vl.reaper);
	vlud_notify_status();
}

void conn_reap(void)
{
	struct list *p, *t;

	list_for_each_safe(p, t, &vl.conns) {
		struct conn *c = list_entry(p, struct conn, link);

		if (!c->dead)
			continue;
		list_del(&c->link);
		free(c->cred.groups);
		free(c);
	}
}

void conn_kill_all(const char *why)
{
	struct list *p, *t;

	list_for_each_safe(p, t, &vl.conns)
		conn_kill(list_entry(p, struct conn, link), why);
}

void conn_update_idle(struct conn *c)
{
	if (!c || c->dead)
		return;
	if (c->negotiated && !c->inst && !c->subscribed && vl.cfg->limits.idle_timeout_ms > 0) {
		c->idle.repeat = vl.cfg->limits.idle_timeout_ms / 1000.;
		ev_timer_again(vl.loop, &c->idle);
	} else
		ev_timer_stop(vl.loop, &c->idle);
}

/* Best-effort last words before closing (never queued). */
static void send_final_error(int fd, enum vlu_error_class cls, const char *desc)
{
	_cleanup_json_ json_object *e = vlu_reply_error(cls, desc, NULL);
	const char *s;
	size_t len;

	if (!e)
		json_oom("error reply");
	s = vlu_json_dump(e, &len);
	if (!s)
		json_oom("serialisation");
	(void)vlu_msg_send(fd, s, len, NULL, 0);
}

static int flush(struct conn *c)
{
	struct list *p, *t;

	list_for_each_safe(p, t, &c->outq) {
		struct outmsg *m = list_entry(p, struct outmsg, link);
		int r = vlu_msg_send(c->fd, m->buf, m->len, m->fds, m->nfds);

		if (r == -EAGAIN)
			break;
		if (r < 0) {
			log_debug("connection %llu: send: %s", (unsigned long long)c->id, strerror(-r));
			conn_kill(c, "send failed");
			return r;
		}
		c->out_bytes -= m->len;
		c->out_fds -= m->nfds;
		outmsg_free(c, m);
	}
	if (list_empty(&c->outq)) {
		ev_io_stop(vl.loop, &c->io_out);
		if (vl.stopping)
			conn_kill(c, "daemon stopping");
	} else
		ev_io_start(vl.loop, &c->io_out);
	return 0;
}

int conn_send(struct conn *c, json_object *msg, const int *fds, size_t nfds)
{
	struct outmsg *m;
	const char *s;
	size_t len;
	int r;

	if (c->dead)
		return -ENOTCONN;
	s = vlu_json_dump(msg, &len);
	if (!s)
		json_oom("serialisation");
	if (list_empty(&c->outq)) {
		r = vlu_msg_send(c->fd, s, len, fds, nfds);
		if (r == 0)
			return 0;
		if (r != -EAGAIN) {
			log_warning("connection %llu (pid %d): send failed: %s", (unsigned long long)c->id,
				    (int)c->cred.pid, strerror(-r));
			conn_kill(c, "send failed");
			return r;
		}
	}
	if (c->out_bytes + len > vl.cfg->limits.max_pending_output_bytes || c->out_fds + nfds > MAX_QUEUED_FDS ||
	    (!(c->roles & ROLE_OPERATOR) &&
	     output_of_uid(c->cred.uid) + len > vl.cfg->limits.max_pending_output_bytes_per_uid)) {
		log_warning("connection %llu (pid %d uid %u): more than %u bytes (%u for the uid) or %u fds of "
			    "output pending, disconnecting",
			    (unsigned long long)c->id, (int)c->cred.pid, (unsigned)c->cred.uid,
			    vl.cfg->limits.max_pending_output_bytes, vl.cfg->limits.max_pending_output_bytes_per_uid,
			    MAX_QUEUED_FDS);
		conn_kill(c, "output limit");
		return -ENOBUFS;
	}
	m = calloc(1, sizeof(*m) + nfds * sizeof(int));
	if (!m || !(m->buf = malloc(len))) {
		free(m);
		conn_kill(c, "out of memory");
		return -ENOMEM;
	}
	memcpy(m->buf, s, len);
	m->len = len;
	list_init(&m->link);
	for (size_t i = 0; i < nfds; i++) {
		m->fds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
		if (m->fds[i] < 0) {
			r = -errno;
			m->nfds = i;
			outmsg_free(c, m);
			conn_kill(c, "dup failed");
			return r;
		}
		m->nfds = i + 1;
	}
	list_add_tail(&c->outq, &m->link);
	c->out_bytes += len;
	c->out_fds += m->nfds;
	ev_io_start(vl.loop, &c->io_out);
	return 0;
}

static void out_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)flush(container_of(w, struct conn, io_out));
}

/* Fds of a uid not closed yet beyond which vlud stops reading that uid's connections: a peer whose
 * fds block in close() must not fill vlud's fd table with more (closer.h). */
#define CLOSE_BACKLOG_MAX (2 * VLU_MAX_FDS_PER_MSG)

static void backlog_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct conn *c = container_of(w, struct conn, backlog);

	if (!c->dead)
		ev_io_start(vl.loop, &c->io_in); /* in_cb checks again */
}

/* The strict rules (vlu_json_check(), docs/PROTOCOL.md section 1) before dispatch, so that the reply
 * says what is wrong and where: InvalidArgument without id (nothing is taken from a message that
 * breaks them, not even its id), and the connection goes on.  Depth is left to the dispatcher
 * (LimitExceeded).  True when the message was answered here. */
static bool refuse_malformed(struct conn *c, const char *buf, size_t len)
{
	_cleanup_json_ json_object *e = NULL;
	char err[256], desc[300];

	if (vlu_json_check(buf, len, (int)vl.cfg->limits.max_json_depth, err, sizeof(err)) != -EINVAL)
		return false;
	snprintf(desc, sizeof(desc), "malformed message: %s", err);
	log_debug("connection %llu (pid %d): %s", (unsigned long long)c->id, (int)c->cred.pid, desc);
	e = vlu_reply_error(VLU_ERR_INVALID_ARGUMENT, desc, NULL);
	if (e)
		(void)conn_send(c, e, NULL, 0);
	return true;
}

static void in_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct conn *c = container_of(w, struct conn, io_in);
	char own[64];

	/* a few messages per wake-up, so that one busy client cannot starve the others */
	for (int i = 0; i < 16 && !c->dead; i++) {
		int fds[VLU_MAX_FDS_PER_MSG];
		size_t nfds = 0;
		ssize_t n;

		if (closer_client_backlog(c->cred.uid) > CLOSE_BACKLOG_MAX) {
			log_warning("connection %llu (pid %d uid %u): reading paused: %u of the uid's fds are still "
				    "closing", (unsigned long long)c->id, (int)c->cred.pid, (unsigned)c->cred.uid,
				    closer_client_backlog(c->cred.uid));
			ev_io_stop(vl.loop, &c->io_in);
			ev_timer_set(&c->backlog, 0.2, 0.);
			ev_timer_start(vl.loop, &c->backlog);
			break;
		}
		/* every fd that came is ours from here; refused ones close in the uid's closer lane */
		n = vlu_msg_recv_all(c->fd, vl.recvbuf, vl.recvbuf_size, fds, &nfds);
		if (nfds > 0 && (n <= 0 || nfds > vl.cfg->limits.max_fds_per_message)) {
			closer_close_client(c->cred.uid, conn_owner(c, own, sizeof(own)), fds, nfds);
			if (n > 0)
				n = -EMSGSIZE;
			nfds = 0;
		}
		if (n == -EAGAIN)
			break;
		if (n == 0) {
			conn_kill(c, "closed by peer");
			break;
		}
		if (n == -EMSGSIZE) {
			_cleanup_json_ json_object *e = NULL;
			char desc[160];

			snprintf(desc, sizeof(desc),
				 "message truncated: larger than %u bytes or carrying more than %u fds; ignored",
				 vl.cfg->limits.max_message_bytes, vl.cfg->limits.max_fds_per_message);
			e = vlu_reply_error(VLU_ERR_LIMIT_EXCEEDED, desc, NULL);
			if (!e)
				json_oom("error reply");
			(void)conn_send(c, e, NULL, 0);
			continue;
		}
		if (n < 0) {
			log_debug("connection %llu: recv: %s", (unsigned long long)c->id, strerror((int)-n));
			conn_kill(c, "receive failed");
			break;
		}
		if (refuse_malformed(c, vl.recvbuf, (size_t)n))
			/* like the dispatcher does on any refusal: off the loop, in the sender's lane */
			closer_close_client(c->cred.uid, conn_owner(c, own, sizeof(own)), fds, nfds);
		else
			commands_dispatch(c, vl.recvbuf, (size_t)n, fds, nfds);
		conn_update_idle(c);
	}
}

static void handshake_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct conn *c = container_of(w, struct conn, handshake);
	char desc[128];

	if (c->negotiated)
		return;
	snprintf(desc, sizeof(desc), "capabilities not negotiated within %u ms",
		 vl.cfg->limits.handshake_timeout_ms);
	send_final_error(c->fd, VLU_ERR_TIMEOUT, desc);
	conn_kill(c, "handshake timeout");
}

static void idle_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct conn *c = container_of(w, struct conn, idle);
	char desc[128];

	snprintf(desc, sizeof(desc), "idle for %u ms without an instance or a subscription",
		 vl.cfg->limits.idle_timeout_ms);
	send_final_error(c->fd, VLU_ERR_TIMEOUT, desc);
	conn_kill(c, "idle timeout");
}

static int peer_groups(int fd, gid_t **ret, size_t *ret_n)
{
	socklen_t len = 64 * sizeof(gid_t);

	for (;;) {
		gid_t *g = malloc(len ? len : sizeof(gid_t));

		if (!g)
			return -ENOMEM;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &len) == 0) {
			*ret = g;
			*ret_n = len / sizeof(gid_t);
			return 0;
		}
		free(g);
		if (errno != ERANGE)
			return -errno;
		/* len now holds the size needed */
	}
}

static const char *const greeting_caps[] = { NULL };

static void conn_new(int fd)
{
	_cleanup_close_ int sfd = fd; /* owned until moved into the connection */
	_cleanup_close_ int pidfd = -EBADF;
	_cleanup_json_ json_object *greeting = NULL;
	struct peer_cred cred = {};
	struct ucred uc;
	socklen_t len = sizeof(uc);
	unsigned roles;
	struct conn *c;

	if (getsockopt(sfd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0) {
		log_warning("SO_PEERCRED: %m");
		return;
	}
	cred.pid = uc.pid;
	cred.uid = uc.uid;
	cred.gid = uc.gid;
	if (peer_groups(sfd, &cred.groups, &cred.n_groups) < 0) {
		cred.groups = NULL;
		cred.n_groups = 0;
	}

	roles = policy_roles(vl.cfg, &cred);
	if (!roles) {
		log_info("refusing connection from pid %d uid %u gid %u: not admitted by the policy", (int)cred.pid,
			 (unsigned)cred.uid, (unsigned)cred.gid);
		send_final_error(sfd, VLU_ERR_PERMISSION_DENIED, "not admitted by the policy (neither operator nor VMM)");
		free(cred.groups);
		return;
	}
	{
		const struct vlud_limits *l = &vl.cfg->limits;
		unsigned reserve = l->operator_reserved_connections < l->max_connections / 2 ?
					   l->operator_reserved_connections : l->max_connections / 2;
		unsigned cap = roles & ROLE_OPERATOR ? l->max_connections : l->max_connections - reserve;
		const char *why = NULL;

		/* operators may use the reserved connections, and no per-uid quota holds them */
		if (vl.n_conns >= cap)
			why = "too many connections (max_connections)";
		else if (!(roles & ROLE_OPERATOR) && conn_count_uid(cred.uid) >= l->max_connections_per_uid)
			why = "too many connections of this uid (max_connections_per_uid)";
		if (why) {
			log_warning("refusing connection from pid %d uid %u: %u connections: %s", (int)cred.pid,
				    (unsigned)cred.uid, vl.n_conns, why);
			send_final_error(sfd, VLU_ERR_LIMIT_EXCEEDED, why);
			free(cred.groups);
			return;
		}
	}
	if (cred.pid > 0) {
		pidfd = pidfd_open(cred.pid, 0);
		if (pidfd < 0) {
			/* the peer died already, or lives in another pid namespace; instance.register will say so */
			log_debug("pidfd_open(%d): %m", (int)cred.pid);
			pidfd = -EBADF;
		} /* pidfds are always O_CLOEXEC */
	}

	c = calloc(1, sizeof(*c));
	if (!c) {
		free(cred.groups);
		return;
	}
	c->id = ++vl.next_conn_id;
	c->fd = TAKE_FD(sfd);
	c->pidfd = TAKE_FD(pidfd);
	c->cred = cred;
	c->roles = roles;
	c->sub_events = VLU_EVENTS_ALL;
	list_init(&c->outq);
	ev_io_init(&c->io_in, in_cb, c->fd, EV_READ);
	ev_io_init(&c->io_out, out_cb, c->fd, EV_WRITE);
	ev_timer_init(&c->handshake, handshake_cb, vl.cfg->limits.handshake_timeout_ms / 1000., 0.);
	ev_timer_init(&c->backlog, backlog_cb, 0.2, 0.);
	ev_init(&c->idle, idle_cb);
	list_add_tail(&vl.conns, &c->link);
	vl.n_conns++;
	ev_io_start(vl.loop, &c->io_in);
	ev_timer_start(vl.loop, &c->handshake);
	log_debug("connection %llu from pid %d uid %u gid %u%s%s", (unsigned long long)c->id, (int)cred.pid,
		  (unsigned)cred.uid, (unsigned)cred.gid, roles & ROLE_OPERATOR ? " operator" : "",
		  roles & ROLE_VMM ? " vmm" : "");

	greeting = vlu_greeting_new(VLUD_PACKAGE, greeting_caps);
	if (!greeting)
		json_oom("greeting");
	(void)conn_send(c, greeting, NULL, 0);
	vlud_notify_status();
}

static void accept_resume_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	if (!vl.stopping && vl.listen_fd >= 0)
		ev_io_start(vl.loop, &vl.listen_io);
}

void conn_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	for (int i = 0; i < 64; i++) {
		int fd = accept4(vl.listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
				return;
			log_warning("accept: %m; pausing for 1 s");
			/* EMFILE and friends: the listener stays readable, do not spin */
			ev_io_stop(vl.loop, &vl.listen_io);
			ev_timer_init(&accept_pause, accept_resume_cb, 1., 0.);
			ev_timer_start(vl.loop, &accept_pause);
			return;
		}
		conn_new(fd);
	}
}
