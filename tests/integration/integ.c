/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * integ.c - helpers for the host integration tests (see integ.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/kcmp.h>

#include "integ.h"
#include "vlu-proto.h"

/* ---- TAP ---- */

static const char *tap_prefix = "integ";
static unsigned n_fail;

void tap_suite(const char *suite)
{
	tap_prefix = suite;
}

bool tap_check(bool cond, const char *name, const char *fmt, ...)
{
	if (cond) {
		printf("ok - %s/%s\n", tap_prefix, name);
	} else {
		char why[1024] = "";
		va_list ap;

		if (fmt) {
			va_start(ap, fmt);
			vsnprintf(why, sizeof(why), fmt, ap);
			va_end(ap);
		}
		/* one line: newlines in the reason would break TAP */
		for (char *p = why; *p; p++)
			if (*p == '\n')
				*p = ' ';
		printf("not ok - %s/%s: %s\n", tap_prefix, name, why[0] ? why : "failed");
		n_fail++;
	}
	fflush(stdout);
	return cond;
}

void tap_skip(const char *name, const char *reason)
{
	printf("ok - %s/%s # SKIP %s\n", tap_prefix, name, reason);
	fflush(stdout);
}

void tap_diag(const char *fmt, ...)
{
	char buf[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
		printf("# %s\n", line);
	fflush(stdout);
}

unsigned tap_failures(void)
{
	return n_fail;
}

int tap_exit_status(void)
{
	return n_fail ? 1 : 0;
}

/* ---- environment ---- */

const char *integ_build_dir(void)
{
	static char buf[PATH_MAX];
	const char *b = getenv("VLU_BUILD");

	if (buf[0])
		return buf;
	if (!b || !*b)
		b = "build";
	if (!realpath(b, buf))
		snprintf(buf, sizeof(buf), "%s", b);
	return buf;
}

const char *integ_prog(const char *name)
{
	static char bufs[4][PATH_MAX];
	static unsigned slot;
	char *b = bufs[slot++ % 4];

	snprintf(b, PATH_MAX, "%s/%s", integ_build_dir(), name);
	return b;
}

char *integ_mkdtemp(const char *tag)
{
	const char *t = getenv("TMPDIR");
	char *p;

	if (!t || !*t)
		t = "/tmp";
	if (asprintf(&p, "%s/vlu-%s.XXXXXX", t, tag) < 0)
		return NULL;
	if (!mkdtemp(p)) {
		free(p);
		return NULL;
	}
	chmod(p, 0755);
	return p;
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path) < 0 ? 0 : 0;
}

void integ_rmrf(const char *dir)
{
	if (dir && getenv("VLU_KEEP_TMP") == NULL)
		nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

int integ_write_file(const char *path, const char *content)
{
	FILE *f = fopen(path, "we");

	if (!f)
		return -errno;
	fputs(content, f);
	if (fclose(f) != 0)
		return -errno;
	return 0;
}

/* ---- systemd's side of sd_notify (sdstore.c; here with a reader thread) ---- */

int integ_notify_open(struct integ_notify *n, const char *dir)
{
	char path[256];

	memset(n, 0, sizeof(*n));
	pthread_mutex_init(&n->lock, NULL);
	snprintf(path, sizeof(path), "%s/notify", dir);
	return sdstore_open(&n->sd, path);
}

void integ_notify_close(struct integ_notify *n)
{
	if (n->thread_running) {
		n->thread_stop = true;
		pthread_join(n->thread, NULL);
		n->thread_running = false;
	}
	sdstore_close(&n->sd);
}

/* handle everything queued now */
static void notify_drain(struct integ_notify *n)
{
	pthread_mutex_lock(&n->lock);
	while (sdstore_recv_one(&n->sd) > 0)
		;
	pthread_mutex_unlock(&n->lock);
}

static void *notify_thread(void *arg)
{
	struct integ_notify *n = arg;

	while (!n->thread_stop) {
		struct pollfd p = { .fd = n->sd.fd, .events = POLLIN };
		if (poll(&p, 1, 50) == 1)
			notify_drain(n);
	}
	return NULL;
}

int integ_notify_start(struct integ_notify *n)
{
	int r = pthread_create(&n->thread, NULL, notify_thread, n);
	if (r != 0)
		return -r;
	n->thread_running = true;
	return 0;
}

void integ_notify_lock(struct integ_notify *n)
{
	pthread_mutex_lock(&n->lock);
}

void integ_notify_unlock(struct integ_notify *n)
{
	pthread_mutex_unlock(&n->lock);
}

int integ_notify_pump(struct integ_notify *n, int timeout_ms, const bool *flag)
{
	/* without the thread, this thread reads; with it, the thread reads and this one waits */
	for (int waited = 0;; waited += 5) {
		bool done;

		if (!n->thread_running)
			notify_drain(n);
		pthread_mutex_lock(&n->lock);
		done = flag && *flag;
		pthread_mutex_unlock(&n->lock);
		if (done || waited >= timeout_ms)
			break;
		usleep(5000);
	}
	notify_drain(n); /* whatever is queued at return has been handled */
	return 0;
}

size_t integ_notify_count_prefix(struct integ_notify *n, const char *prefix)
{
	size_t c = 0;
	pthread_mutex_lock(&n->lock);
	for (size_t i = 0; i < n->sd.n_store; i++)
		if (strncmp(n->sd.store[i].name, prefix, strlen(prefix)) == 0)
			c++;
	pthread_mutex_unlock(&n->lock);
	return c;
}

size_t integ_notify_count_held(struct integ_notify *n)
{
	/* vlud's held fds: alone as "h<id>", the memfds of one change together as "g<group>" */
	return integ_notify_count_prefix(n, "h") + integ_notify_count_prefix(n, "g");
}

int integ_notify_find(struct integ_notify *n, const char *name)
{
	int fd;
	pthread_mutex_lock(&n->lock);
	fd = sdstore_find(&n->sd, name);
	pthread_mutex_unlock(&n->lock);
	return fd;
}

/* ---- the daemon ---- */

char *integ_config(const char *dir, const char *extra_vmms, const char *extra_json)
{
	char *s;

	/* commented JSON, docs/CONFIG.md; the test owns the socket path and a permissive socket mode so
	 * that the policy (not the file mode) is what admits or refuses a peer */
	if (asprintf(&s,
		     "// generated by tests/integration (integ_default_config)\n"
		     "{\n"
		     "  \"socket\": { \"path\": \"%s/vlud.sock\", \"mode\": \"0666\" },\n"
		     "  \"operators\": { \"uids\": [0] },\n"
		     "  \"vmms\": [ { \"uids\": [0], \"devices\": [\"vdpa0\", \"/dev/null\"],\n"
		     "              \"fd_types\": [\"memfd\", \"eventfd\", \"vhost-vdpa\", \"pipe\", \"socket\", \"file\"] }%s%s ]%s%s\n"
		     "}\n",
		     dir, extra_vmms ? ",\n            " : "", extra_vmms ? extra_vmms : "", extra_json ? ",\n  " : "",
		     extra_json ? extra_json : "") < 0)
		return NULL;
	return s;
}

char *integ_default_config(const char *dir, const char *extra_json)
{
	return integ_config(dir, NULL, extra_json);
}

static int wait_pid_timeout(pid_t pid, int *status, int timeout_ms)
{
	/* like PID 1, which learns of a child's death at once (SIGCHLD, pidfd): a pidfd turns readable when
	 * the child exits; without pidfd_open (Linux < 5.3), poll every 10 ms */
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);

	if (pfd >= 0) {
		struct pollfd p = { .fd = pfd, .events = POLLIN };
		pid_t r;

		(void)poll(&p, 1, timeout_ms);
		close(pfd);
		r = waitpid(pid, status, WNOHANG);
		if (r == pid)
			return 0;
		return r < 0 ? -errno : -ETIMEDOUT;
	}
	for (int waited = 0;; waited += 10) {
		pid_t r = waitpid(pid, status, WNOHANG);
		if (r == pid)
			return 0;
		if (r < 0)
			return -errno;
		if (waited >= timeout_ms)
			return -ETIMEDOUT;
		usleep(10000);
	}
}

bool integ_daemon_alive(struct integ_daemon *d)
{
	int st;

	if (d->pid <= 0)
		return false;
	if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
		d->exit_status = st;
		d->pid = 0;
		return false;
	}
	return true;
}

int integ_daemon_start(struct integ_daemon *d, const char *dir, const struct integ_daemon_opts *o)
{
	static const struct integ_daemon_opts none;
	_cleanup_free_ char *cfg = NULL;
	int pass[SDSTORE_MAX + 8]; /* everything the store can hold (the benchmark restarts with 1000 held fds) */
	const char *names[SDSTORE_MAX + 8];
	size_t npass = 0;
	pid_t pid;
	int r;

	if (!o)
		o = &none;
	memset(d, 0, sizeof(*d));
	d->exit_status = -1;
	snprintf(d->dir, sizeof(d->dir), "%s", dir);
	snprintf(d->sock, sizeof(d->sock), "%s/vlud.sock", dir);
	snprintf(d->conf, sizeof(d->conf), "%s/vlud.conf", dir);
	snprintf(d->log, sizeof(d->log), "%s/vlud.log", dir);
	d->notify = o->notify;

	cfg = o->config_json ? strdup(o->config_json) : integ_default_config(dir, NULL);
	if (!cfg)
		return -ENOMEM;
	r = integ_write_file(d->conf, cfg);
	if (r < 0)
		return r;

	for (size_t i = 0; i < o->n_listen; i++) {
		pass[npass] = o->listen_fds[i];
		names[npass++] = o->listen_names ? o->listen_names[i] : "unknown";
	}
	if (o->notify)
		pthread_mutex_lock(&o->notify->lock); /* released in the parent after fork */
	if (o->from_store && o->notify)
		for (size_t i = 0; i < o->notify->sd.n_store && npass < ELEMENTSOF(pass); i++) {
			pass[npass] = o->notify->sd.store[i].fd;
			names[npass++] = o->notify->sd.store[i].name;
		}

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid != 0 && o->notify)
		pthread_mutex_unlock(&o->notify->lock);
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		char buf[64];
		const char *argv[32];
		size_t argc = 0;
		int logfd = open(d->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

		if (logfd >= 0) {
			dup2(logfd, STDOUT_FILENO);
			dup2(logfd, STDERR_FILENO);
		}
		/* the passed fds at 3.., LISTEN_FDS/LISTEN_FDNAMES/LISTEN_PID (sdstore.c, shared with the rig) */
		if (sdstore_child_listen_fds(pass, names, npass) < 0)
			_exit(121);
		unsetenv("NOTIFY_SOCKET");
		if (o->notify)
			setenv("NOTIFY_SOCKET", o->notify->sd.path, 1);
		unsetenv("WATCHDOG_USEC");
		unsetenv("WATCHDOG_PID");
		if (o->watchdog_usec) {
			snprintf(buf, sizeof(buf), "%u", o->watchdog_usec);
			setenv("WATCHDOG_USEC", buf, 1);
			snprintf(buf, sizeof(buf), "%d", (int)getpid());
			setenv("WATCHDOG_PID", buf, 1);
		}
		argv[argc++] = integ_prog("vlud");
		argv[argc++] = "--config";
		argv[argc++] = d->conf;
		for (size_t i = 0; o->extra_args && o->extra_args[i] && argc < ELEMENTSOF(argv) - 1; i++)
			argv[argc++] = o->extra_args[i];
		argv[argc] = NULL;
		execv(argv[0], (char *const *)argv);
		fprintf(stderr, "exec %s: %m\n", argv[0]);
		_exit(127);
	}
	d->pid = pid;
	if (o->no_wait)
		return 0;
	return integ_daemon_wait_ready(d, 10000);
}

int integ_daemon_wait_ready(struct integ_daemon *d, int timeout_ms)
{
	for (int waited = 0; waited < timeout_ms; waited += 20) {
		if (!integ_daemon_alive(d))
			return -ECHILD;
		if (d->notify) {
			integ_notify_pump(d->notify, 20, &d->notify->sd.ready);
			if (d->notify->sd.ready)
				return 0;
		} else {
			int fd = integ_connect(d->sock);
			if (fd >= 0) {
				close(fd);
				return 0;
			}
			usleep(20000);
		}
	}
	return -ETIMEDOUT;
}

int integ_daemon_stop(struct integ_daemon *d, int sig, int timeout_ms)
{
	int st = 0, r;

	if (d->pid <= 0)
		return d->exit_status;
	kill(d->pid, sig);
	for (int waited = 0;; waited += 20) {
		if (d->notify)
			integ_notify_pump(d->notify, 0, NULL);
		r = wait_pid_timeout(d->pid, &st, 20);
		if (r == 0)
			break;
		if (waited >= timeout_ms) {
			kill(d->pid, SIGKILL);
			waitpid(d->pid, &st, 0);
			d->pid = 0;
			d->exit_status = st;
			return -ETIMEDOUT;
		}
	}
	if (d->notify)
		integ_notify_pump(d->notify, 0, NULL);
	d->pid = 0;
	d->exit_status = st;
	return st;
}

void integ_daemon_dump_log(const struct integ_daemon *d)
{
	_cleanup_free_ char *cmd = NULL, *out = NULL;

	if (asprintf(&cmd, "tail -n 40 '%s'", d->log) < 0)
		return;
	integ_run(cmd, &out);
	tap_diag("daemon log (%s):\n%s", d->log, out ? out : "");
}

/* ---- raw protocol client ---- */

int integ_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

int integ_recv(int fd, int timeout_ms, json_object **ret, int *ret_fds, size_t max_fds, size_t *ret_nfds)
{
	static char buf[VLU_MAX_MSG_BYTES + 1];
	int tmpfds[VLU_MAX_FDS_PER_MSG];
	size_t nfds = 0;
	struct pollfd p = { .fd = fd, .events = POLLIN };
	ssize_t n;
	int r;

	r = poll(&p, 1, timeout_ms);
	if (r < 0)
		return -errno;
	if (r == 0)
		return -ETIMEDOUT;
	n = vlu_msg_recv(fd, buf, sizeof(buf), tmpfds, ELEMENTSOF(tmpfds), &nfds);
	if (n == 0)
		return -ECONNRESET;
	if (n < 0)
		return (int)n;
	r = vlu_json_parse(buf, (size_t)n, 64, ret);
	if (r < 0) {
		close_many(tmpfds, nfds);
		return r;
	}
	if (ret_nfds) {
		size_t k = nfds < max_fds ? nfds : max_fds;
		memcpy(ret_fds, tmpfds, k * sizeof(int));
		close_many(tmpfds + k, nfds - k);
		*ret_nfds = k;
	} else
		close_many(tmpfds, nfds);
	return 0;
}

int integ_send_raw(int fd, const void *buf, size_t len, const int *fds, size_t nfds)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * 512)];
	} control;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (nfds > 512)
		return -EINVAL;
	if (nfds) {
		struct cmsghdr *c;
		mh.msg_control = &control;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	if (sendmsg(fd, &mh, MSG_NOSIGNAL) < 0)
		return -errno;
	return 0;
}

int integ_open_client(const char *path, json_object **ret_greeting)
{
	_cleanup_json_ json_object *g = NULL, *rep = NULL;
	_cleanup_close_ int fd = -EBADF;
	int r;

	fd = integ_connect(path);
	if (fd < 0)
		return fd;
	r = integ_recv(fd, 5000, &g, NULL, 0, NULL);
	if (r < 0)
		return r;
	if (!json_object_object_get_ex(g, "VLU", NULL))
		return -EPROTO;
	r = integ_call(fd, "capabilities", "{\"enable\":[]}", NULL, 0, &rep, NULL, 0, NULL);
	if (r < 0)
		return r;
	if (!integ_return(rep))
		return -EPROTO;
	if (ret_greeting)
		*ret_greeting = TAKE_PTR(g);
	return TAKE_FD(fd);
}

int integ_call(int fd, const char *cmd, const char *args_json, const int *fds, size_t nfds, json_object **ret_reply,
	       int *ret_fds, size_t max_fds, size_t *ret_nfds)
{
	static int next_id = 1000;
	_cleanup_free_ char *msg = NULL;
	int id = next_id++;
	int r;

	if (asprintf(&msg, "{\"execute\":\"%s\"%s%s,\"id\":%d}", cmd, args_json ? ",\"arguments\":" : "",
		     args_json ? args_json : "", id) < 0)
		return -ENOMEM;
	r = integ_send_raw(fd, msg, strlen(msg), fds, nfds);
	if (r < 0)
		return r;
	for (;;) {
		json_object *m = NULL, *jid;
		int rf[VLU_MAX_FDS_PER_MSG];
		size_t nrf = 0;

		r = integ_recv(fd, 10000, &m, rf, ELEMENTSOF(rf), &nrf);
		if (r < 0)
			return r;
		if (json_object_object_get_ex(m, "id", &jid) && json_object_is_type(jid, json_type_int) &&
		    json_object_get_int(jid) == id) {
			if (ret_nfds) {
				size_t k = nrf < max_fds ? nrf : max_fds;
				memcpy(ret_fds, rf, k * sizeof(int));
				close_many(rf + k, nrf - k);
				*ret_nfds = k;
			} else
				close_many(rf, nrf);
			*ret_reply = m;
			return 0;
		}
		/* an event (or a reply to something else): drop */
		close_many(rf, nrf);
		json_object_put(m);
	}
}

json_object *integ_return(json_object *reply)
{
	json_object *r;
	return reply && json_object_object_get_ex(reply, "return", &r) ? r : NULL;
}

const char *integ_error_class(json_object *reply)
{
	return integ_str(integ_get(reply, "error.class"));
}

const char *integ_error_desc(json_object *reply)
{
	return integ_str(integ_get(reply, "error.desc"));
}

json_object *integ_get(json_object *o, const char *path)
{
	char buf[256], *save = NULL;

	if (!o || !path)
		return NULL;
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *k = strtok_r(buf, ".", &save); k && o; k = strtok_r(NULL, ".", &save)) {
		if (json_object_is_type(o, json_type_array)) {
			char *end;
			long i = strtol(k, &end, 10);
			o = *end ? NULL : json_object_array_get_idx(o, (size_t)i);
		} else if (json_object_is_type(o, json_type_object)) {
			json_object *v = NULL;
			o = json_object_object_get_ex(o, k, &v) ? v : NULL;
		} else
			o = NULL;
	}
	return o;
}

const char *integ_str(json_object *o)
{
	return o && json_object_is_type(o, json_type_string) ? json_object_get_string(o) : NULL;
}

int integ_run(const char *cmdline, char **ret_out)
{
	FILE *p;
	char *buf = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&buf, &len);
	char chunk[4096];
	size_t n;
	int st;

	if (!mem)
		return -ENOMEM;
	fflush(stdout);
	p = popen(cmdline, "re");
	if (!p) {
		fclose(mem);
		free(buf);
		return -errno;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0)
		fwrite(chunk, 1, n, mem);
	st = pclose(p);
	fclose(mem);
	if (ret_out)
		*ret_out = buf;
	else
		free(buf);
	return st;
}

int integ_kcmp_file(pid_t p1, int fd1, pid_t p2, int fd2)
{
	long r = syscall(SYS_kcmp, p1, p2, KCMP_FILE, (unsigned long)fd1, (unsigned long)fd2);
	return r < 0 ? -errno : (int)r;
}

json_object *integ_call_json(int fd, const char *cmd, const char *args_json)
{
	json_object *rep = NULL;

	if (integ_call(fd, cmd, args_json, NULL, 0, &rep, NULL, 0, NULL) < 0)
		return NULL;
	return rep;
}

/* ---- state snapshots: fd.list + instance.list, minus the fields that change with time ---- */

static void strip_times(json_object *o)
{
	if (json_object_is_type(o, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(o); i++)
			strip_times(json_object_array_get_idx(o, i));
	} else if (json_object_is_type(o, json_type_object)) {
		char *del[64];
		size_t nd = 0;
		json_object_object_foreach(o, k, v) {
			size_t l = strlen(k);
			if ((l > 3 && (strcmp(k + l - 3, "_ms") == 0 || strcmp(k + l - 3, "_us") == 0)) ||
			    strncmp(k, "uptime", 6) == 0) {
				if (nd < ELEMENTSOF(del))
					del[nd++] = k;
			} else
				strip_times(v);
		}
		for (size_t i = 0; i < nd; i++)
			json_object_object_del(o, del[i]);
	}
}

char *integ_snapshot(int c)
{
	_cleanup_json_ json_object *a = NULL, *b = NULL;
	char *s;

	if (integ_call(c, "fd.list", NULL, NULL, 0, &a, NULL, 0, NULL) < 0 || !integ_return(a))
		return strdup("fd.list failed");
	if (integ_call(c, "instance.list", NULL, NULL, 0, &b, NULL, 0, NULL) < 0 || !integ_return(b))
		return strdup("instance.list failed");
	strip_times(a);
	strip_times(b);
	if (asprintf(&s, "%s %s", json_object_to_json_string(integ_return(a)),
		     json_object_to_json_string(integ_return(b))) < 0)
		return NULL;
	return s;
}
