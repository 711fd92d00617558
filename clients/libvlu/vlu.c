/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vlu.c - libvlu: connection, greeting and negotiation, generic call with
 * timeout, reply matching by id, event queue, typed wrappers.
 *
 * Never logs, prints, exits or raises signals (sends use MSG_NOSIGNAL).
 * Everything exported is declared in vlu.h and listed in libvlu.sym; the
 * wire format comes from protocol/ (linked in statically, hidden).
 *
 * fd ownership inside: v->sock, v->epfd, v->evfd belong to v and are closed
 * by vlu_close().  fds received with a message belong to whoever handles the
 * message: the caller of vlu_call() for its reply, otherwise they are closed
 * at once (events and stale replies carry no fds we could use).
 *
 * Adding a call: a typed wrapper builds its arguments and uses vlu_call();
 * nothing else needs to change.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include "basics.h"
#include "vlu-proto.h"
#include "vlu.h"
#include "vlu-int.h"

#define VLU_EXPORT __attribute__((visibility("default")))

/* replies may nest deeper than requests (device info, lists) */
#define REPLY_MAX_DEPTH 64
/* events queued while nobody processes them; beyond this the oldest are dropped */
#define EVENT_QUEUE_MAX 4096

struct vlu {
	int sock; /* SOCK_SEQPACKET, nonblocking, owned */
	int epfd; /* epoll over sock + evfd: what vlu_get_fd() hands out, owned */
	int evfd; /* eventfd, readable while events are queued, owned */
	char *buf;
	size_t bufsz;
	int64_t next_id;
	int timeout_ms;
	bool dead; /* EOF or fatal error seen */

	vlu_event_fn event_fn;
	void *event_userdata;
	json_object *queue; /* array of queued event messages */
	uint64_t events_dropped;

	json_object *greeting;
	int srv_major, srv_minor, srv_micro;
	const char *srv_package; /* borrowed from greeting */
	json_object *srv_caps;	 /* borrowed from greeting */

	bool have_error;
	char *err_class;
	char *err_desc;

	/* the last call's timing (CLOCK_MONOTONIC us; vlu_call_times()): its request sent, its reply read
	 * off the socket (before parsing) */
	uint64_t t_sent_us, t_reply_us, t_recv_us;
};

/* ---------------------------------------------------------------- time */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* deadline in CLOCK_MONOTONIC ms, or -1 for none */
static int64_t deadline_of(struct vlu *v, int timeout_ms)
{
	if (timeout_ms == 0)
		timeout_ms = v && v->timeout_ms ? v->timeout_ms : VLU_DEFAULT_TIMEOUT_MS;
	if (timeout_ms < 0)
		return -1;
	return now_ms() + timeout_ms;
}

/* ms left until deadline for poll(): -1 = infinite, 0 = expired */
static int remaining_ms(int64_t deadline)
{
	int64_t left;

	if (deadline < 0)
		return -1;
	left = deadline - now_ms();
	if (left <= 0)
		return 0;
	return left > INT32_MAX ? INT32_MAX : (int)left;
}

static int wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };

	for (;;) {
		int t = remaining_ms(deadline);
		int r;

		if (t == 0)
			return -ETIMEDOUT;
		r = poll(&p, 1, t);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -ETIMEDOUT;
		return 0; /* readable, writable, or HUP/ERR: the next I/O call reports which */
	}
}

/* ---------------------------------------------------------------- errors */

static void clear_error(struct vlu *v)
{
	v->have_error = false;
	free(TAKE_PTR(v->err_class));
	free(TAKE_PTR(v->err_desc));
}

static int errno_of_class(const char *cls)
{
	switch (vlu_error_class_from_name(cls)) {
	case VLU_ERR_INVALID_ARGUMENT:
		return -EINVAL;
	case VLU_ERR_COMMAND_NOT_FOUND:
		return -ENOSYS;
	case VLU_ERR_NOT_NEGOTIATED:
		return -EPROTO;
	case VLU_ERR_PERMISSION_DENIED:
		return -EACCES;
	case VLU_ERR_NOT_FOUND:
		return -ENOENT;
	case VLU_ERR_BUSY:
		return -EBUSY;
	case VLU_ERR_LIMIT_EXCEEDED:
		return -E2BIG;
	case VLU_ERR_DEVICE_ERROR:
		return -EIO;
	case VLU_ERR_UNSUPPORTED:
		return -EOPNOTSUPP;
	case VLU_ERR_TIMEOUT:
		return -ETIME;
	default:
		return -EREMOTEIO;
	}
}

/* Record an error reply {"error":{"class","desc"}}; returns the mapped errno. */
static int take_error(struct vlu *v, json_object *err)
{
	json_object *cls = NULL, *desc = NULL;
	const char *c = "GenericError", *d = "";

	if (json_object_object_get_ex(err, "class", &cls) && json_object_is_type(cls, json_type_string))
		c = json_object_get_string(cls);
	if (json_object_object_get_ex(err, "desc", &desc) && json_object_is_type(desc, json_type_string))
		d = json_object_get_string(desc);
	clear_error(v);
	v->err_class = strdup(c);
	v->err_desc = strdup(d);
	v->have_error = v->err_class && v->err_desc;
	return errno_of_class(c);
}

/* ---------------------------------------------------------------- events */

static void queue_event(struct vlu *v, json_object *msg)
{
	uint64_t one = 1;

	if (!v->queue)
		v->queue = json_object_new_array();
	if (!v->queue)
		return;
	if (json_object_array_length(v->queue) >= EVENT_QUEUE_MAX) {
		json_object_array_del_idx(v->queue, 0, 1);
		v->events_dropped++;
	}
	if (json_object_array_add(v->queue, json_object_get(msg)) < 0) {
		json_object_put(msg);
		return;
	}
	/* make vlu_get_fd() readable until vlu_process() has delivered it */
	(void)!write(v->evfd, &one, sizeof(one));
}

/* ---------------------------------------------------------------- receiving */

enum msg_kind { MSG_OTHER, MSG_EVENT, MSG_REPLY };

static enum msg_kind classify(json_object *msg, int64_t *ret_id)
{
	json_object *x = NULL;

	if (json_object_object_get_ex(msg, "event", &x) && json_object_is_type(x, json_type_string))
		return MSG_EVENT;
	if (json_object_object_get_ex(msg, "return", NULL) || json_object_object_get_ex(msg, "error", NULL)) {
		*ret_id = -1;
		if (json_object_object_get_ex(msg, "id", &x) && json_object_is_type(x, json_type_int))
			*ret_id = json_object_get_int64(x);
		return MSG_REPLY;
	}
	return MSG_OTHER;
}

/* Read one message without blocking.  1: got one (*ret_msg, *ret_fds/ret_nfds owned by caller);
 * -EAGAIN: nothing there; -ECONNRESET: EOF; -EBADMSG: a truncated message was dropped; -EPROTO: a
 * message breaking the strict rules (vlu_json_check(): invalid UTF-8, NUL, non-finite numbers, raw
 * control characters, not one object) was dropped; other -errno. */
static int recv_one(struct vlu *v, json_object **ret_msg, int *fds, size_t *ret_nfds)
{
	size_t nfds = 0;
	json_object *msg = NULL;
	ssize_t n;
	int r;

	if (v->dead)
		return -ECONNRESET;
	n = vlu_msg_recv(v->sock, v->buf, v->bufsz, fds, VLU_MAX_FDS_PER_MSG, &nfds);
	if (n == -EAGAIN)
		return -EAGAIN;
	if (n == -EMSGSIZE)
		return -EBADMSG; /* truncated; its fds are already closed */
	if (n == 0 || n == -ECONNRESET || n == -EPIPE) {
		v->dead = true;
		return -ECONNRESET;
	}
	if (n < 0)
		return (int)n;
	v->t_recv_us = now_us();
	/* the same strict parser as the daemon's: a daemon's reply is refused like a client's request */
	r = vlu_json_parse(v->buf, (size_t)n, REPLY_MAX_DEPTH, &msg);
	if (r < 0) {
		close_many(fds, nfds);
		return -EPROTO;
	}
	*ret_msg = msg;
	*ret_nfds = nfds;
	return 1;
}

/* Route a message that is not the reply someone waits for: events are queued, the rest dropped. */
static void route_other(struct vlu *v, json_object *msg, int *fds, size_t nfds)
{
	int64_t id;

	json_object *err;

	close_many(fds, nfds);
	switch (classify(msg, &id)) {
	case MSG_EVENT:
		queue_event(v, msg);
		break;
	case MSG_REPLY:
		/* an error without id outside a call: the daemon's last words before closing (idle timeout,
		 * output limit); keep it for vlu_last_error() */
		if (!json_object_object_get_ex(msg, "id", NULL) && json_object_object_get_ex(msg, "error", &err) &&
		    json_object_is_type(err, json_type_object))
			(void)take_error(v, err);
		break;
	default:
		break;
	}
}

/* Wait for the reply with this id; events arriving meanwhile are queued. */
static int wait_reply(struct vlu *v, int64_t want, int64_t deadline, json_object **ret_msg, int *fds,
		      size_t *ret_nfds)
{
	for (;;) {
		_cleanup_json_ json_object *msg = NULL;
		size_t nfds = 0;
		int64_t id;
		int r;

		r = recv_one(v, &msg, fds, &nfds);
		if (r == -EAGAIN) {
			r = wait_fd(v->sock, POLLIN, deadline);
			if (r < 0)
				return r;
			continue;
		}
		if (r == -EBADMSG)
			continue;
		if (r < 0)
			return r; /* -EPROTO: most likely our reply, and unusable: the call fails */
		/* An error without id answers the request in flight: the daemon could not read it (truncated,
		 * too many fds, too deep) or is closing the connection (timeouts).  Requests are sequential. */
		if (classify(msg, &id) == MSG_REPLY &&
		    (id == want || (!json_object_object_get_ex(msg, "id", NULL) &&
				    json_object_object_get_ex(msg, "error", NULL)))) {
			*ret_msg = TAKE_PTR(msg);
			*ret_nfds = nfds;
			v->t_reply_us = v->t_recv_us;
			return 0;
		}
		route_other(v, msg, fds, nfds);
	}
}

/* ---------------------------------------------------------------- calls */

static int send_msg(struct vlu *v, json_object *msg, const int *fds, size_t nfds, int64_t deadline)
{
	size_t len = 0;
	const char *s = vlu_json_dump(msg, &len);

	if (!s)
		return -ENOMEM;
	for (;;) {
		int r = vlu_msg_send(v->sock, s, len, fds, nfds);

		if (r == -EAGAIN) {
			r = wait_fd(v->sock, POLLOUT, deadline);
			if (r < 0)
				return r;
			continue;
		}
		if (r == -EPIPE || r == -ECONNRESET) {
			v->dead = true;
			return -ECONNRESET;
		}
		return r;
	}
}

/* The request half of a call: *ret_id gets the id to wait for (call_finish). */
static int call_send(struct vlu *v, const char *command, json_object *args, const int *fds, size_t nfds,
		     int64_t deadline, int64_t *ret_id)
{
	_cleanup_json_ json_object *req = NULL;
	int64_t id;
	int r;

	if (!v || !command)
		return -EINVAL;
	clear_error(v);
	if (v->dead)
		return -ECONNRESET;
	if (args && !json_object_is_type(args, json_type_object))
		return -EINVAL;
	/* refuse what the daemon would refuse (invalid UTF-8, NUL, non-finite numbers) instead of sending
	 * it repaired: a name with '?' in place of a byte is another name */
	if (!vlu_utf8_valid(command, strlen(command)) || (args && vlu_json_check_tree(args, NULL, 0) < 0))
		return -EINVAL;
	if (nfds > VLU_MAX_FDS_PER_MSG)
		return -E2BIG;

	id = v->next_id++;
	req = json_object_new_object();
	if (!req)
		return -ENOMEM;
	if (json_object_object_add(req, "execute", json_object_new_string(command)) < 0)
		return -ENOMEM;
	if (args && json_object_object_add(req, "arguments", json_object_get(args)) < 0)
		return -ENOMEM;
	if (json_object_object_add(req, "id", json_object_new_int64(id)) < 0)
		return -ENOMEM;

	r = send_msg(v, req, fds, nfds, deadline);
	if (r < 0)
		return r;
	v->t_sent_us = now_us();
	v->t_reply_us = 0;
	*ret_id = id;
	return 0;
}

/* The reply half of a call sent with call_send. */
static int call_finish(struct vlu *v, int64_t id, int64_t deadline, json_object **ret_return, int **ret_fds,
		       size_t *ret_nfds)
{
	_cleanup_json_ json_object *reply = NULL;
	int rfds[VLU_MAX_FDS_PER_MSG];
	size_t rn = 0;
	json_object *x;
	int r;

	r = wait_reply(v, id, deadline, &reply, rfds, &rn);
	if (r < 0)
		return r;

	if (json_object_object_get_ex(reply, "error", &x)) {
		close_many(rfds, rn);
		if (!json_object_is_type(x, json_type_object))
			return -EPROTO;
		return take_error(v, x);
	}
	if (!json_object_object_get_ex(reply, "return", &x) || !json_object_is_type(x, json_type_object)) {
		close_many(rfds, rn);
		return -EPROTO;
	}

	if (ret_fds && rn > 0) {
		int *a = malloc(sizeof(int) * rn);
		if (!a) {
			close_many(rfds, rn);
			return -ENOMEM;
		}
		memcpy(a, rfds, sizeof(int) * rn);
		*ret_fds = a;
	} else {
		close_many(rfds, rn);
		if (ret_fds)
			*ret_fds = NULL;
	}
	if (ret_nfds)
		*ret_nfds = ret_fds ? rn : 0;
	if (ret_return)
		*ret_return = json_object_get(x);
	return 0;
}

static int call_deadline(struct vlu *v, const char *command, json_object *args, const int *fds, size_t nfds,
			 int64_t deadline, json_object **ret_return, int **ret_fds, size_t *ret_nfds)
{
	int64_t id;
	int r = call_send(v, command, args, fds, nfds, deadline, &id);

	if (r < 0)
		return r;
	return call_finish(v, id, deadline, ret_return, ret_fds, ret_nfds);
}

VLU_EXPORT int vlu_call(struct vlu *v, const char *command, json_object *args, const int *fds, size_t nfds,
			int timeout_ms, json_object **ret_return, int **ret_fds, size_t *ret_nfds)
{
	return call_deadline(v, command, args, fds, nfds, deadline_of(v, timeout_ms), ret_return, ret_fds, ret_nfds);
}

void vlu_call_times(struct vlu *v, uint64_t *ret_sent_us, uint64_t *ret_reply_us)
{
	*ret_sent_us = v ? v->t_sent_us : 0;
	*ret_reply_us = v ? v->t_reply_us : 0;
}

VLU_EXPORT int vlu_last_error(struct vlu *v, const char **ret_class, const char **ret_desc)
{
	if (!v || !v->have_error)
		return -ENODATA;
	if (ret_class)
		*ret_class = v->err_class;
	if (ret_desc)
		*ret_desc = v->err_desc;
	return 0;
}

/* ---------------------------------------------------------------- connection */

VLU_EXPORT void vlu_close(struct vlu *v)
{
	if (!v)
		return;
	safe_close(v->epfd);
	safe_close(v->evfd);
	safe_close(v->sock);
	json_object_put(v->queue);
	json_object_put(v->greeting);
	clear_error(v);
	free(v->buf);
	free(v);
}

static int connect_socket(const char *path, int64_t deadline)
{
	_cleanup_close_ int fd = -EBADF;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	socklen_t salen;
	size_t len = strlen(path);
	int t = remaining_ms(deadline);

	if (len == 0)
		return -EINVAL;
	if (len >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, len);
	salen = offsetof(struct sockaddr_un, sun_path) + len + 1;
	if (path[0] == '@') { /* abstract namespace */
		sa.sun_path[0] = '\0';
		salen = offsetof(struct sockaddr_un, sun_path) + len;
	}

	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* A blocking connect honours SO_SNDTIMEO when the listen backlog is full. */
	if (t > 0) {
		struct timeval tv = { .tv_sec = t / 1000, .tv_usec = (t % 1000) * 1000 };
		if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
			return -errno;
	} else if (t == 0)
		return -ETIMEDOUT;
	for (;;) {
		if (connect(fd, (struct sockaddr *)&sa, salen) == 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EINPROGRESS)
			return -ETIMEDOUT;
		return -errno;
	}
	if (t > 0) {
		struct timeval tv = { 0 };
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
		return -errno;
	return TAKE_FD(fd);
}

/* Read the greeting: {"VLU":{"version":{...},"capabilities":[...]}}. */
static int read_greeting(struct vlu *v, int64_t deadline)
{
	int fds[VLU_MAX_FDS_PER_MSG];

	for (;;) {
		_cleanup_json_ json_object *msg = NULL;
		json_object *body, *ver, *x;
		size_t nfds = 0;
		int r = recv_one(v, &msg, fds, &nfds);

		if (r == -EAGAIN) {
			r = wait_fd(v->sock, POLLIN, deadline);
			if (r < 0)
				return r;
			continue;
		}
		if (r == -EBADMSG)
			return -EPROTO;
		if (r < 0)
			return r;
		close_many(fds, nfds);

		/* refused before the greeting (e.g. connection limit): an error message, then EOF */
		if (json_object_object_get_ex(msg, "error", &x) && json_object_is_type(x, json_type_object))
			return take_error(v, x);
		if (!json_object_object_get_ex(msg, "VLU", &body) || !json_object_is_type(body, json_type_object) ||
		    !json_object_object_get_ex(body, "version", &ver) || !json_object_is_type(ver, json_type_object))
			return -EPROTO;
		if (!json_object_object_get_ex(ver, "major", &x) || !json_object_is_type(x, json_type_int))
			return -EPROTO;
		v->srv_major = json_object_get_int(x);
		if (json_object_object_get_ex(ver, "minor", &x) && json_object_is_type(x, json_type_int))
			v->srv_minor = json_object_get_int(x);
		if (json_object_object_get_ex(ver, "micro", &x) && json_object_is_type(x, json_type_int))
			v->srv_micro = json_object_get_int(x);
		if (json_object_object_get_ex(ver, "package", &x) && json_object_is_type(x, json_type_string))
			v->srv_package = json_object_get_string(x);
		if (json_object_object_get_ex(body, "capabilities", &x) && json_object_is_type(x, json_type_array))
			v->srv_caps = x;
		v->greeting = TAKE_PTR(msg);
		if (v->srv_major != VLU_PROTO_MAJOR)
			return -EPROTONOSUPPORT;
		return 0;
	}
}

/* A struct vlu without a socket yet (buffers, eventfd, epoll); NULL when out of resources (errno). */
static struct vlu *vlu_new(int timeout_ms)
{
	struct vlu *v = calloc(1, sizeof(*v));

	if (!v)
		return NULL;
	v->sock = v->epfd = v->evfd = -EBADF;
	v->next_id = 1;
	v->timeout_ms = timeout_ms;
	v->bufsz = VLU_MAX_MSG_BYTES + 1;
	v->buf = malloc(v->bufsz);
	if (!v->buf)
		goto fail;
	v->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (v->evfd < 0)
		goto fail;
	v->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (v->epfd < 0)
		goto fail;
	return v;
fail:;
	int e = errno ? errno : ENOMEM;

	vlu_close(v);
	errno = e;
	return NULL;
}

/* v takes sock (owned from here) and watches it with the eventfd in its epoll fd. */
static int vlu_attach_sock(struct vlu *v, int sock)
{
	struct epoll_event ev = { .events = EPOLLIN };

	v->sock = sock;
	ev.data.fd = v->sock;
	if (epoll_ctl(v->epfd, EPOLL_CTL_ADD, v->sock, &ev) < 0)
		return -errno;
	ev.data.fd = v->evfd;
	if (epoll_ctl(v->epfd, EPOLL_CTL_ADD, v->evfd, &ev) < 0)
		return -errno;
	return 0;
}

static const char *socket_path(const char *path)
{
	if (!path) {
		path = getenv("VLUD_SOCKET");
		if (!path || !*path)
			path = VLU_DEFAULT_SOCKET;
	}
	return path;
}

VLU_EXPORT int vlu_connect_caps(const char *path, int timeout_ms, const char *const *enable, struct vlu **ret)
{
	struct vlu *v = NULL;
	_cleanup_json_ json_object *args = NULL;
	json_object *arr;
	int64_t deadline;
	int r;

	if (!ret)
		return -EINVAL;
	path = socket_path(path);
	deadline = deadline_of(NULL, timeout_ms);
	v = vlu_new(timeout_ms);
	if (!v)
		return -errno;
	r = connect_socket(path, deadline);
	if (r < 0)
		goto fail;
	r = vlu_attach_sock(v, r);
	if (r < 0)
		goto fail;

	args = json_object_new_object();
	arr = json_object_new_array();
	if (!args || !arr || json_object_object_add(args, "enable", arr) < 0) {
		json_object_put(arr);
		r = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; enable && enable[i]; i++)
		if (json_object_array_add(arr, json_object_new_string(enable[i])) < 0) {
			r = -ENOMEM;
			goto fail;
		}
	/* The negotiation goes out before the greeting is read (the daemon sends its greeting at accept,
	 * before it reads anything): one round trip instead of two, which a successor pays inside the pause.
	 * A daemon that refuses the connection sends an error and closes: the greeting's reader reports
	 * that, whatever became of our request. */
	{
		int64_t id = 0;
		int s = call_send(v, "capabilities", args, NULL, 0, deadline, &id);

		r = read_greeting(v, deadline);
		if (r < 0)
			goto fail;
		if (s < 0) {
			r = s;
			goto fail;
		}
		r = call_finish(v, id, deadline, NULL, NULL, NULL);
		if (r < 0)
			goto fail;
	}

	*ret = v;
	return 0;
fail:
	vlu_close(v);
	return r;
}

VLU_EXPORT int vlu_connect(const char *path, int timeout_ms, struct vlu **ret)
{
	return vlu_connect_caps(path, timeout_ms, NULL, ret);
}

/* ---------------------------------------------------------------- the connection kept across exec */

/* $VLU_CONNECTION = "FD:INODE:UID:MAJOR.MINOR.MICRO:NEXTID:CAPS": the socket's fd number and inode, the
 * uid of the daemon's end (SO_PEERCRED), the greeting's version, the next request id (a late reply to a
 * call of the old image that timed out must not match a call of the new one) and the greeting's
 * capabilities (comma separated). */
#define KEEP_CAPS_MAX 1024

static bool cap_name_ok(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '-' ||
		      *s == '_' || *s == '.'))
			return false;
	return true;
}

int vlu_keep_prepare(struct vlu *v)
{
	char caps[KEEP_CAPS_MAX] = "", val[KEEP_CAPS_MAX + 128];
	struct ucred cr;
	socklen_t l = sizeof(cr);
	struct stat st;
	int fl;

	if (!v || v->dead || v->sock < 0)
		return -ENOTCONN;
	if (fstat(v->sock, &st) < 0 || getsockopt(v->sock, SOL_SOCKET, SO_PEERCRED, &cr, &l) < 0)
		return -errno;
	for (size_t i = 0; v->srv_caps && i < json_object_array_length(v->srv_caps); i++) {
		json_object *c = json_object_array_get_idx(v->srv_caps, i);
		size_t n = strlen(caps);

		if (!json_object_is_type(c, json_type_string) || !cap_name_ok(json_object_get_string(c)))
			return -EINVAL;
		if ((size_t)snprintf(caps + n, sizeof(caps) - n, "%s%s", n ? "," : "", json_object_get_string(c)) >=
		    sizeof(caps) - n)
			return -E2BIG;
	}
	snprintf(val, sizeof(val), "%d:%" PRIu64 ":%u:%d.%d.%d:%" PRId64 ":%s", v->sock, (uint64_t)st.st_ino,
		 (unsigned)cr.uid, v->srv_major, v->srv_minor, v->srv_micro, v->next_id, caps);
	fl = fcntl(v->sock, F_GETFD);
	if (fl < 0)
		return -errno;
	if (setenv(VLU_CONNECTION_ENV, val, 1) < 0)
		return -errno;
	if (fcntl(v->sock, F_SETFD, fl & ~FD_CLOEXEC) < 0) {
		int r = -errno;

		unsetenv(VLU_CONNECTION_ENV);
		return r;
	}
	return 0;
}

void vlu_keep_undo(struct vlu *v)
{
	unsetenv(VLU_CONNECTION_ENV);
	if (v && v->sock >= 0)
		(void)fcntl(v->sock, F_SETFD, FD_CLOEXEC);
}

/* a decimal number of at most max, the whole of [s, end) */
static bool parse_num(const char *s, const char *end, uint64_t max, uint64_t *ret)
{
	uint64_t n = 0;

	if (s == end || end - s > 20)
		return false;
	for (; s < end; s++) {
		if (*s < '0' || *s > '9' || n > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return false;
		n = n * 10 + (uint64_t)(*s - '0');
	}
	if (n > max)
		return false;
	*ret = n;
	return true;
}

struct kept {
	int fd;
	uint64_t ino;
	uid_t uid;
	int ver[3];
	int64_t next_id;
	const char *caps; /* into the parsed copy */
};

/* Parse s (modified: the caps are cut out of it) into *k; false when it is not exactly the format. */
static bool parse_kept(char *s, struct kept *k)
{
	char *f[6];
	uint64_t n[7];
	size_t nf = 0;
	char *p = s;

	for (; nf < 5; nf++) {
		char *c = strchr(p, ':');

		if (!c)
			return false;
		f[nf] = p;
		*c = '\0';
		p = c + 1;
	}
	f[5] = p;
	if (!parse_num(f[0], f[0] + strlen(f[0]), INT32_MAX, &n[0]) ||
	    !parse_num(f[1], f[1] + strlen(f[1]), UINT64_MAX, &n[1]) ||
	    !parse_num(f[2], f[2] + strlen(f[2]), UINT32_MAX - 1, &n[2]) ||
	    !parse_num(f[4], f[4] + strlen(f[4]), INT64_MAX, &n[6]) || n[6] == 0)
		return false;
	{
		char *d1 = strchr(f[3], '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;

		if (!d1 || !d2 || !parse_num(f[3], d1, INT32_MAX, &n[3]) || !parse_num(d1 + 1, d2, INT32_MAX, &n[4]) ||
		    !parse_num(d2 + 1, d2 + 1 + strlen(d2 + 1), INT32_MAX, &n[5]))
			return false;
	}
	k->fd = (int)n[0];
	k->ino = n[1];
	k->uid = (uid_t)n[2];
	k->ver[0] = (int)n[3];
	k->ver[1] = (int)n[4];
	k->ver[2] = (int)n[5];
	k->next_id = (int64_t)n[6];
	k->caps = f[5];
	return true;
}

/* Is fd the connected SOCK_SEQPACKET socket k describes, its other end the daemon listening at path? */
static bool kept_socket_ok(const struct kept *k, const char *path)
{
	struct sockaddr_un sa = { 0 };
	socklen_t l, salen = sizeof(sa);
	struct pollfd p = { .fd = k->fd, .events = POLLIN | POLLRDHUP };
	struct ucred cr;
	struct stat st;
	size_t plen = strlen(path);
	int x;

	if (fcntl(k->fd, F_GETFD) < 0 || fstat(k->fd, &st) < 0 || !S_ISSOCK(st.st_mode) || (uint64_t)st.st_ino != k->ino)
		return false;
	l = sizeof(x);
	if (getsockopt(k->fd, SOL_SOCKET, SO_DOMAIN, &x, &l) < 0 || x != AF_UNIX)
		return false;
	l = sizeof(x);
	if (getsockopt(k->fd, SOL_SOCKET, SO_TYPE, &x, &l) < 0 || x != SOCK_SEQPACKET)
		return false;
	l = sizeof(x);
	if (getsockopt(k->fd, SOL_SOCKET, SO_ACCEPTCONN, &x, &l) < 0 || x != 0)
		return false;
	/* the other end: the process and uid that accepted (vlud), as the old image saw them */
	l = sizeof(cr);
	if (getsockopt(k->fd, SOL_SOCKET, SO_PEERCRED, &cr, &l) < 0 || cr.pid <= 0 || cr.uid != k->uid)
		return false;
	/* ... listening at the path this image would connect to */
	if (getpeername(k->fd, (struct sockaddr *)&sa, &salen) < 0 || salen <= offsetof(struct sockaddr_un, sun_path) ||
	    sa.sun_family != AF_UNIX || plen == 0 || plen >= sizeof(sa.sun_path))
		return false;
	if (path[0] == '@') {
		if (salen != offsetof(struct sockaddr_un, sun_path) + plen || sa.sun_path[0] != '\0' ||
		    memcmp(sa.sun_path + 1, path + 1, plen - 1) != 0)
			return false;
	} else if (strnlen(sa.sun_path, sizeof(sa.sun_path)) != plen || memcmp(sa.sun_path, path, plen) != 0)
		return false;
	/* not hung up (a daemon gone since: a fresh connection tells the caller so) */
	if (poll(&p, 1, 0) < 0 || (p.revents & (POLLHUP | POLLRDHUP | POLLERR | POLLNVAL)))
		return false;
	return true;
}

/* A struct vlu on the kept socket k->fd (validated): 0 and *ret, or -errno (the socket closed then). */
static int adopt(const struct kept *k, int timeout_ms, struct vlu **ret)
{
	_cleanup_json_ json_object *g = json_object_new_object();
	json_object *body = json_object_new_object(), *ver = json_object_new_object(), *caps = json_object_new_array();
	struct vlu *v;
	int r;

	if (!g || !body || !ver || !caps || json_object_object_add(g, "VLU", body) < 0) {
		json_object_put(body);
		json_object_put(ver);
		json_object_put(caps);
		return -ENOMEM;
	}
	if (json_object_object_add(body, "version", ver) < 0) {
		json_object_put(ver);
		json_object_put(caps);
		return -ENOMEM;
	}
	if (json_object_object_add(body, "capabilities", caps) < 0) {
		json_object_put(caps);
		return -ENOMEM;
	}
	json_object_object_add(ver, "major", json_object_new_int(k->ver[0]));
	json_object_object_add(ver, "minor", json_object_new_int(k->ver[1]));
	json_object_object_add(ver, "micro", json_object_new_int(k->ver[2]));
	for (const char *p = k->caps; *p;) {
		size_t n = strcspn(p, ",");

		if (n && json_object_array_add(caps, json_object_new_string_len(p, (int)n)) < 0)
			return -ENOMEM;
		p += n + (p[n] == ',');
	}
	v = vlu_new(timeout_ms);
	if (!v)
		return -errno;
	/* ours again for this image's children: close-on-exec as every fd libvlu makes */
	if (fcntl(k->fd, F_SETFD, FD_CLOEXEC) < 0) {
		r = -errno;
		goto fail;
	}
	r = vlu_attach_sock(v, k->fd);
	if (r < 0)
		goto fail;
	v->srv_major = k->ver[0];
	v->srv_minor = k->ver[1];
	v->srv_micro = k->ver[2];
	v->next_id = k->next_id;
	v->srv_caps = caps;
	v->greeting = TAKE_PTR(g);
	*ret = v;
	return 0;
fail:
	if (v->sock < 0)
		v->sock = k->fd; /* closed with v */
	vlu_close(v);
	return r;
}

VLU_EXPORT int vlu_update_connect(const char *path, int timeout_ms, struct vlu **ret)
{
	const char *e = getenv(VLU_CONNECTION_ENV);
	_cleanup_free_ char *val = e ? strdup(e) : NULL;
	struct kept k;
	int r;

	if (!ret)
		return -EINVAL;
	/* read once: neither a child of this image nor a later call may take it for theirs */
	unsetenv(VLU_CONNECTION_ENV);
	path = socket_path(path);
	/* an fd that is not exactly the kept connection is left alone: it may be anything of this process */
	if (val && parse_kept(val, &k) && k.ver[0] == VLU_PROTO_MAJOR && kept_socket_ok(&k, path) &&
	    adopt(&k, timeout_ms, ret) == 0)
		return 1;
	r = vlu_connect(path, timeout_ms, ret);
	return r < 0 ? r : 0;
}

VLU_EXPORT void vlu_server_version(struct vlu *v, int *ret_major, int *ret_minor, int *ret_micro)
{
	if (!v)
		return;
	if (ret_major)
		*ret_major = v->srv_major;
	if (ret_minor)
		*ret_minor = v->srv_minor;
	if (ret_micro)
		*ret_micro = v->srv_micro;
}

VLU_EXPORT const char *vlu_server_package(struct vlu *v)
{
	return v ? v->srv_package : NULL;
}

VLU_EXPORT bool vlu_server_has_capability(struct vlu *v, const char *capability)
{
	if (!v || !v->srv_caps || !capability)
		return false;
	for (size_t i = 0; i < json_object_array_length(v->srv_caps); i++) {
		json_object *c = json_object_array_get_idx(v->srv_caps, i);
		if (json_object_is_type(c, json_type_string) && strcmp(json_object_get_string(c), capability) == 0)
			return true;
	}
	return false;
}

VLU_EXPORT void vlu_set_timeout(struct vlu *v, int timeout_ms)
{
	if (v)
		v->timeout_ms = timeout_ms;
}

VLU_EXPORT int vlu_get_fd(struct vlu *v)
{
	return v ? v->epfd : -EINVAL;
}

VLU_EXPORT void vlu_set_event_callback(struct vlu *v, vlu_event_fn fn, void *userdata)
{
	if (!v)
		return;
	v->event_fn = fn;
	v->event_userdata = userdata;
}

VLU_EXPORT int vlu_process(struct vlu *v)
{
	int fds[VLU_MAX_FDS_PER_MSG];
	uint64_t cnt;
	int delivered = 0, r = 0;

	if (!v)
		return -EINVAL;

	/* read what is there; events go to the queue so that order is kept */
	for (;;) {
		_cleanup_json_ json_object *msg = NULL;
		size_t nfds = 0;

		r = recv_one(v, &msg, fds, &nfds);
		if (r == -EAGAIN) {
			r = 0;
			break;
		}
		if (r == -EBADMSG || r == -EPROTO)
			continue;
		if (r < 0)
			break;
		route_other(v, msg, fds, nfds); /* nobody waits for a reply here */
	}

	(void)!read(v->evfd, &cnt, sizeof(cnt)); /* reset readiness before delivering */
	while (v->queue && json_object_array_length(v->queue) > 0) {
		_cleanup_json_ json_object *ev = json_object_get(json_object_array_get_idx(v->queue, 0));
		json_object *name = NULL;

		json_object_array_del_idx(v->queue, 0, 1);
		if (!v->event_fn)
			continue;
		json_object_object_get_ex(ev, "event", &name);
		/* the callback may call into v (and queue more events: they are delivered in this loop) */
		v->event_fn(v, json_object_get_string(name), ev, v->event_userdata);
		delivered++;
	}
	if (r < 0)
		return r;
	return delivered;
}

/* ---------------------------------------------------------------- typed wrappers */

/* The arguments {"names": [NAMES...]} of fd.store, fd.retrieve, fd.remove; NULL when out of memory or a
 * name is NULL. */
static json_object *names_args(const char *const *names, size_t n)
{
	_cleanup_json_ json_object *args = json_object_new_object();
	json_object *a = json_object_new_array();

	if (!args || !a) {
		json_object_put(a);
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		if (!names[i] || json_object_array_add(a, json_object_new_string(names[i])) < 0) {
			json_object_put(a);
			return NULL;
		}
	}
	if (json_object_object_add(args, "names", a) < 0) {
		json_object_put(a);
		return NULL;
	}
	return TAKE_PTR(args);
}

static int add_str(json_object *o, const char *key, const char *val)
{
	json_object *s;

	if (!val)
		return 0;
	s = json_object_new_string(val);
	if (!s)
		return -ENOMEM;
	if (json_object_object_add(o, key, s) < 0) {
		json_object_put(s);
		return -ENOMEM;
	}
	return 0;
}

static int simple_call(struct vlu *v, const char *command, json_object *args, json_object **ret)
{
	return vlu_call(v, command, args, NULL, 0, 0, ret, NULL, NULL);
}

VLU_EXPORT int vlu_register(struct vlu *v, const char *name, bool reattach)
{
	_cleanup_json_ json_object *args = json_object_new_object();

	if (!args || add_str(args, "name", name) < 0)
		return -ENOMEM;
	if (!name)
		return -EINVAL;
	if (reattach && json_object_object_add(args, "reattach", json_object_new_boolean(1)) < 0)
		return -ENOMEM;
	return simple_call(v, "instance.register", args, NULL);
}

VLU_EXPORT int vlu_device_open(struct vlu *v, const char *device, int *ret_fd, json_object **ret_info)
{
	_cleanup_json_ json_object *args = json_object_new_object(), *ret = NULL;
	_cleanup_free_ int *fds = NULL;
	size_t nfds = 0;
	json_object *dev = NULL;
	int r;

	if (!device || !ret_fd)
		return -EINVAL;
	if (!args || add_str(args, "device", device) < 0)
		return -ENOMEM;
	r = vlu_call(v, "device.open", args, NULL, 0, 0, &ret, &fds, &nfds);
	if (r < 0)
		return r;
	if (nfds != 1) {
		close_many(fds, nfds);
		return -EPROTO;
	}
	if (ret_info) {
		if (!json_object_object_get_ex(ret, "device", &dev) || !json_object_is_type(dev, json_type_object)) {
			close_many(fds, nfds);
			return -EPROTO;
		}
		*ret_info = json_object_get(dev);
	}
	*ret_fd = fds[0];
	return 0;
}

/* device.reopen's reply describes the one fd it carries (docs/PROTOCOL.md): "fds" is that fd alone, under the
 * name asked for, with the character device's rdev, opened read-write (not O_PATH: fstat() of an O_PATH fd
 * tells the same type and rdev, but no ioctl works on it), and "device" is an object.  0, or -EPROTO. */
static int reopen_reply_ok(json_object *ret, const char *name, int fd)
{
	json_object *list, *e, *x;
	struct stat st;
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || (fl & O_PATH) || (fl & O_ACCMODE) != O_RDWR)
		return -EPROTO;

	if (!json_object_is_type(ret, json_type_object) || !json_object_object_get_ex(ret, "fds", &list) ||
	    !json_object_is_type(list, json_type_array) || json_object_array_length(list) != 1)
		return -EPROTO;
	e = json_object_array_get_idx(list, 0);
	if (!json_object_is_type(e, json_type_object) || !json_object_object_get_ex(e, "name", &x) ||
	    !json_object_is_type(x, json_type_string) || strcmp(json_object_get_string(x), name) != 0)
		return -EPROTO;
	if (!json_object_object_get_ex(e, "rdev", &x) || !json_object_is_type(x, json_type_int) ||
	    json_object_get_int64(x) < 0 || fstat(fd, &st) < 0 || !S_ISCHR(st.st_mode) ||
	    (uint64_t)st.st_rdev != json_object_get_uint64(x))
		return -EPROTO;
	if (!json_object_object_get_ex(ret, "device", &x) || !json_object_is_type(x, json_type_object))
		return -EPROTO;
	return 0;
}

VLU_EXPORT int vlu_device_reopen(struct vlu *v, const char *name, int timeout_ms, int *ret_fd,
				 json_object **ret_info)
{
	_cleanup_json_ json_object *args = NULL, *ret = NULL;
	_cleanup_free_ int *fds = NULL;
	size_t nfds = 0;
	int r;

	if (!v || !name || !ret_fd)
		return -EINVAL;
	args = json_object_new_object();
	if (!args || add_str(args, "name", name) < 0)
		return -ENOMEM;
	r = vlu_call(v, "device.reopen", args, NULL, 0, timeout_ms, &ret, &fds, &nfds);
	if (r < 0)
		return r;
	if (nfds != 1 || reopen_reply_ok(ret, name, fds[0]) < 0) {
		close_many(fds, nfds);
		return -EPROTO;
	}
	if (ret_info)
		*ret_info = TAKE_PTR(ret);
	*ret_fd = fds[0];
	return 0;
}

VLU_EXPORT int vlu_fd_store(struct vlu *v, const char *const *names, const int *fds, size_t n, bool replace)
{
	_cleanup_json_ json_object *args = NULL;

	if (!names || !fds || n == 0)
		return -EINVAL;
	if (n > VLU_MAX_FDS_PER_MSG)
		return -E2BIG;
	args = names_args(names, n);
	if (!args)
		return -ENOMEM;
	if (replace && json_object_object_add(args, "replace", json_object_new_boolean(1)) < 0)
		return -ENOMEM;
	return vlu_call(v, "fd.store", args, fds, n, 0, NULL, NULL, NULL);
}

VLU_EXPORT int vlu_fd_retrieve(struct vlu *v, const char *const *names, size_t n, int *fds_out)
{
	_cleanup_json_ json_object *args = NULL;
	_cleanup_free_ int *fds = NULL;
	size_t nfds = 0;
	int r;

	if (!names || !fds_out || n == 0)
		return -EINVAL;
	if (n > VLU_MAX_FDS_PER_MSG)
		return -E2BIG;
	args = names_args(names, n);
	if (!args)
		return -ENOMEM;
	r = vlu_call(v, "fd.retrieve", args, NULL, 0, 0, NULL, &fds, &nfds);
	if (r < 0)
		return r;
	if (nfds != n) {
		close_many(fds, nfds);
		return -EPROTO;
	}
	memcpy(fds_out, fds, sizeof(int) * n);
	return 0;
}

VLU_EXPORT int vlu_fd_list(struct vlu *v, const char *instance, json_object **ret)
{
	_cleanup_json_ json_object *args = json_object_new_object();

	if (!args || add_str(args, "instance", instance) < 0)
		return -ENOMEM;
	return simple_call(v, "fd.list", args, ret);
}

VLU_EXPORT int vlu_fd_remove(struct vlu *v, const char *const *names, size_t n, const char *instance)
{
	_cleanup_json_ json_object *args = NULL, *ret = NULL;
	json_object *x;
	int r;

	if (!names || n == 0)
		return -EINVAL;
	args = names_args(names, n);
	if (!args || add_str(args, "instance", instance) < 0)
		return -ENOMEM;
	r = simple_call(v, "fd.remove", args, &ret);
	if (r < 0)
		return r;
	if (json_object_object_get_ex(ret, "removed", &x) && json_object_is_type(x, json_type_int))
		return json_object_get_int(x);
	return 0;
}

VLU_EXPORT int vlu_subscribe(struct vlu *v, const char *instance)
{
	_cleanup_json_ json_object *args = json_object_new_object();

	if (!args || add_str(args, "instance", instance) < 0)
		return -ENOMEM;
	return simple_call(v, "events.subscribe", args, NULL);
}

VLU_EXPORT int vlu_subscribe_events(struct vlu *v, const char *instance, const char *const *events, size_t n)
{
	_cleanup_json_ json_object *args = NULL;
	json_object *a;

	if (!events || n == 0)
		return -EINVAL;
	if (n > VLU_EVENTS_FILTER_MAX)
		return -E2BIG;
	for (size_t i = 0; i < n; i++)
		if (!events[i])
			return -EINVAL;
	/* the names are checked by the daemon (an unknown one: InvalidArgument, -EINVAL), which knows them */
	args = json_object_new_object();
	if (!args || add_str(args, "instance", instance) < 0)
		return -ENOMEM;
	a = json_object_new_array();
	if (!a || json_object_object_add(args, "events", a) < 0) {
		json_object_put(a);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		if (json_object_array_add(a, json_object_new_string(events[i])) < 0)
			return -ENOMEM;
	return simple_call(v, "events.subscribe", args, NULL);
}

VLU_EXPORT int vlu_status(struct vlu *v, json_object **ret)
{
	return simple_call(v, "status", NULL, ret);
}
