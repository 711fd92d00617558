/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * main.c - vlud: arguments -> configuration -> fds from the service manager
 * (listening socket, fd store) -> listening socket bound if not activated ->
 * capabilities dropped -> signals through the loop -> READY=1 -> run.
 *
 *   vlud [--config PATH] [--socket PATH] [--check-config] [--debug] [--version]
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <grp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>

#include "caps.h"
#include "commands.h"
#include "closer.h"
#include "config.h"
#include "conn.h"
#include "device.h"
#include "instance.h"
#include "fdtype.h"
#include "persist.h"
#include "vlud.h"
#include "update.h"

struct vlud vl;
int vlud_log_level = LOG_INFO;

static ev_signal sig_term, sig_int, sig_hup;
static ev_timer watchdog, stop_deadline;
static ev_prepare status_prep;
static bool status_dirty, notify_ready;

#define STOP_DEADLINE_S 3.0

void vlud_log(int prio, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int saved = errno;

	if (prio > vlud_log_level)
		return;
	va_start(ap, fmt);
	errno = saved; /* for %m */
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fprintf(stderr, "<%d>%s\n", prio, buf);
	errno = saved;
}

void vlud_notify_status(void)
{
	status_dirty = true; /* sent once per loop iteration (status_cb) */
}

static void status_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct list *p, *t;
	unsigned orphaned = 0;

	if (!status_dirty || !notify_ready)
		return;
	status_dirty = false;
	list_for_each_safe(p, t, &vl.instances)
		if (list_entry(p, struct instance, link)->state == INSTANCE_ORPHANED)
			orphaned++;
	(void)sd_notifyf(0, "STATUS=%u instances (%u orphaned), %u fds held, %u connections", vl.n_instances,
			 orphaned, vl.n_held, vl.n_conns);
}

static void reaper_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	ev_idle_stop(loop, w);
	conn_reap();
	if (vl.stopping && vl.n_conns == 0)
		ev_break(loop, EVBREAK_ALL);
}

static void watchdog_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)sd_notify(0, "WATCHDOG=1");
}

static void stop_deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	log_warning("shutdown: %u connections still have output pending after %.0f s, closing them", vl.n_conns,
		    STOP_DEADLINE_S);
	conn_kill_all("daemon stopping");
	conn_reap();
	ev_break(loop, EVBREAK_ALL);
}

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct list *p, *t;

	if (w->signum == SIGHUP) {
		log_info("SIGHUP ignored (restart the service to load a new configuration)");
		return;
	}
	if (vl.stopping) {
		log_warning("second signal: exiting now");
		conn_kill_all("daemon stopping");
		ev_break(loop, EVBREAK_ALL);
		return;
	}
	log_info("%s: stopping", strsignal(w->signum));
	vl.stopping = true;
	/* no device stays suspended: running updates end (RESUME, verdict to their starters) while the
	 * connections are still up */
	update_stop_all("the daemon is stopping");
	(void)sd_notify(0, "STOPPING=1");
	ev_io_stop(loop, &vl.listen_io);
	/* stop reading; connections whose output is flushed close now, the rest when flushed */
	list_for_each_safe(p, t, &vl.conns) {
		struct conn *c = list_entry(p, struct conn, link);

		if (c->dead)
			continue;
		ev_io_stop(loop, &c->io_in);
		if (list_empty(&c->outq))
			conn_kill(c, "daemon stopping");
	}
	ev_timer_init(&stop_deadline, stop_deadline_cb, STOP_DEADLINE_S, 0.);
	ev_timer_start(loop, &stop_deadline);
	ev_idle_start(loop, &vl.reaper); /* breaks the loop once no connection is left */
}

/* Is something listening on path?  1 yes, 0 no (stale), -errno */
static int socket_alive(const char *path)
{
	_cleanup_close_ int fd = -EBADF;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 || errno == EAGAIN)
		return 1;
	if (errno == ECONNREFUSED || errno == ENOENT)
		return 0;
	return -errno;
}

static int bind_socket(const char *path)
{
	_cleanup_close_ int fd = -EBADF;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	mode_t old;
	int r;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		log_error("socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;

	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			log_error("%s exists and is not a socket", path);
			return -EEXIST;
		}
		r = socket_alive(path);
		if (r > 0) {
			log_error("%s: another daemon is listening there", path);
			return -EADDRINUSE;
		}
		if (r < 0) {
			log_error("%s: cannot probe the existing socket: %s", path, strerror(-r));
			return r;
		}
		log_info("removing stale socket %s", path);
		if (unlink(path) < 0 && errno != ENOENT)
			return -errno;
	}

	/* the parent directory (e.g. /run/vlud outside systemd): one level, world-searchable */
	{
		char dir[sizeof(sa.sun_path)];
		char *slash;

		snprintf(dir, sizeof(dir), "%s", path);
		slash = strrchr(dir, '/');
		if (slash && slash != dir) {
			*slash = '\0';
			if (mkdir(dir, 0755) < 0 && errno != EEXIST)
				log_warning("mkdir %s: %m", dir);
		}
	}

	old = umask(0177); /* created 0600, opened up below once owner and group are right */
	r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r < 0) {
		r = -errno;
		log_error("bind %s: %m", path);
		return r;
	}
	if (vl.cfg->socket_group_set && chown(path, (uid_t)-1, vl.cfg->socket_group) < 0) {
		r = -errno;
		log_error("chown %s: %m", path);
		unlink(path);
		return r;
	}
	if (chmod(path, vl.cfg->socket_mode) < 0) {
		r = -errno;
		log_error("chmod %s: %m", path);
		unlink(path);
		return r;
	}
	if (listen(fd, SOMAXCONN) < 0) {
		r = -errno;
		log_error("listen %s: %m", path);
		unlink(path);
		return r;
	}
	vl.bound_path = strdup(path); /* unlinked at exit */
	if (!vl.bound_path) {
		log_error("out of memory");
		unlink(path);
		return -ENOMEM;
	}
	vl.listen_fd = TAKE_FD(fd);
	log_info("listening on %s (mode %04o)", path, (unsigned)vl.cfg->socket_mode);
	return 0;
}

static void raise_nofile(void)
{
	struct rlimit rl;

	/* held fds: up to max_instances * max_fds_per_instance, plus connections */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: vlud [OPTIONS]\n"
		"Live-update supervisor for vhost-vdpa devices.\n\n"
		"  -c, --config PATH    configuration file (default " VLUD_DEFAULT_CONFIG ")\n"
		"  -s, --socket PATH    listening socket path (overrides socket.path)\n"
		"      --check-config   validate the configuration, print it as JSON, exit\n"
		"  -d, --debug          debug logging\n"
		"      --version        print the version and exit\n"
		"  -h, --help           this help\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "socket", required_argument, NULL, 's' },
		{ "check-config", no_argument, NULL, 'C' },
		{ "debug", no_argument, NULL, 'd' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	const char *config_path = NULL, *socket_path = NULL;
	bool check_only = false;
	char err[1024];
	int c, r, ret = 1;

	while ((c = getopt_long(argc, argv, "c:s:dh", opts, NULL)) >= 0) {
		switch (c) {
		case 'c':
			config_path = optarg;
			break;
		case 's':
			socket_path = optarg;
			break;
		case 'C':
			check_only = true;
			break;
		case 'd':
			vlud_log_level = LOG_DEBUG;
			break;
		case 'V':
			printf("%s\n", VLUD_PACKAGE);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "vlud: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (getenv("VLUD_DEBUG"))
		vlud_log_level = LOG_DEBUG;

	vl.listen_fd = -EBADF;
	vl.state_fd = -EBADF;
	vl.next_held_id = 1;
	list_init(&vl.conns);
	list_init(&vl.instances);
	vl.start_monotonic_us = now_monotonic_us();
	/* keep freed heap for reuse instead of returning it at once: a restart with many held fds parses the
	 * state and then writes a new document of the same size, and every page the kernel hands out again
	 * costs a page fault (on a virtual machine's host, tens of microseconds) */
	(void)mallopt(M_TRIM_THRESHOLD, 8 << 20);
	(void)mallopt(M_MMAP_THRESHOLD, 4 << 20);

	if (!config_path) {
		struct stat st;

		/* the default file is optional: built-in defaults (root is the only operator, no VMMs) */
		if (stat(VLUD_DEFAULT_CONFIG, &st) == 0)
			config_path = VLUD_DEFAULT_CONFIG;
	}
	r = config_load(config_path, &vl.cfg, err, sizeof(err));
	if (r < 0) {
		log_error("configuration: %s", err);
		return 1;
	}
	if (!config_path)
		log_info("no %s: using built-in defaults", VLUD_DEFAULT_CONFIG);
	if (socket_path) {
		if (socket_path[0] != '/' || strlen(socket_path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
			log_error("--socket: must be an absolute path shorter than 108 bytes");
			goto out;
		}
		free(vl.cfg->socket_path);
		vl.cfg->socket_path = strdup(socket_path);
		if (!vl.cfg->socket_path) {
			log_error("out of memory");
			goto out;
		}
	}
	if (check_only) {
		json_object *j = config_to_json(vl.cfg);

		printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(j);
		config_free(vl.cfg);
		return 0;
	}
	if (commands_check_table() < 0)
		goto out;

	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	vl.loop = ev_default_loop(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
	if (!vl.loop) {
		log_error("cannot create the event loop");
		goto out;
	}
	(void)closer_init(); /* its thread and eventfd exist from the start (a failure: closes on the loop) */
	vl.recvbuf_size = vl.cfg->limits.max_message_bytes + 1;
	vl.recvbuf = malloc(vl.recvbuf_size);
	if (!vl.recvbuf)
		goto out;
	fdtype_init();
	r = device_vdpa_major();
	vl.vdpa_major = r >= 0 ? r : -1;
	if (r < 0)
		log_info("no vhost-vdpa driver in /proc/devices (device.open will fail until it is loaded)");

	/* fds from the service manager: activated socket, fd store (held fds + state) */
	r = persist_start();
	if (r < 0)
		goto out;
	if (vl.listen_fd < 0 && bind_socket(vl.cfg->socket_path) < 0)
		goto out;
	if (caps_drop() < 0)
		goto out;

	ev_io_init(&vl.listen_io, conn_accept_cb, vl.listen_fd, EV_READ);
	ev_io_start(vl.loop, &vl.listen_io);
	ev_idle_init(&vl.reaper, reaper_cb);
	ev_signal_init(&sig_term, signal_cb, SIGTERM);
	ev_signal_init(&sig_int, signal_cb, SIGINT);
	ev_signal_init(&sig_hup, signal_cb, SIGHUP);
	ev_signal_start(vl.loop, &sig_term);
	ev_signal_start(vl.loop, &sig_int);
	ev_signal_start(vl.loop, &sig_hup);
	ev_prepare_init(&status_prep, status_cb);
	ev_prepare_start(vl.loop, &status_prep);
	{
		uint64_t usec = 0;

		if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
			ev_timer_init(&watchdog, watchdog_cb, 0., usec / 2e6);
			ev_timer_again(vl.loop, &watchdog);
			log_info("watchdog: pinging every %.1f s", usec / 2e6);
		}
	}

	notify_ready = true;
	status_dirty = true;
	(void)sd_notify(0, "READY=1");
	log_info("%s ready: pid %d, %u instances, %u fds held%s", VLUD_PACKAGE, (int)getpid(), vl.n_instances,
		 vl.n_held, vl.fdstore ? ", fd store on" : "");
	ev_run(vl.loop, 0);
	ret = 0;
	log_info("stopped");

out:
	if (vl.loop) {
		ev_io_stop(vl.loop, &vl.listen_io);
		conn_kill_all("daemon exiting");
		conn_reap();
	}
	vl.listen_fd = safe_close(vl.listen_fd);
	if (vl.bound_path) {
		(void)unlink(vl.bound_path);
		free(vl.bound_path);
	}
	persist_freeze();    /* the teardown below must not rewrite the state (instances leave one by one) */
	instance_free_all(); /* our copies only: the fd store keeps its own */
	closer_shutdown(1000); /* device releases finish; a client close still blocked after 1 s ends with the process */
	persist_done();
	vl.state_fd = safe_close(vl.state_fd);
	free(vl.recvbuf);
	config_free(vl.cfg);
	if (vl.loop)
		ev_loop_destroy(vl.loop);
	return ret;
}
