/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-restart-update.c - a live update recorded in the state survives a restart of vlud (docs/UPDATE.md
 * "vlud restarted during an update"), as far as the host can go without a vhost-vdpa device.
 *
 * 1. A VMM stores a memfd and declares its mapping table (vmm.mappings); vlud is killed (SIGKILL) and
 *    restarted from the fd store (this test plays PID 1, tests/integration/sdstore.c): the table is back
 *    (update.status), nothing else is reported.
 * 2. The state memfd is replaced by one written here the way vlud writes it (index page + document) with
 *    an update record: instance vm9, exec mode, path C, phase save, its device "vdpa:vdpa0" suspended but
 *    not in the store.  The restarted vlud ends that update: verdict failed, "vlud restarted during the
 *    update (phase save)", interrupted_by_restart, the device reported lost (no fd held), logged; the
 *    state it rewrites has no update record any more but keeps the verdict; a claim of that update is
 *    refused with the reason; a further restart reports nothing new and still answers the same verdict.
 * 3. A record of a transfer-mode update in phase commit (the successor had claimed and owns the device),
 *    both VMMs alive (two child processes): the restarted vlud reserves the instance to the successor
 *    (verdict reattach_reserved_for): a reattach by any other process of the uid is refused (Busy, saying
 *    why), also after two more kill -9 restarts (the reservation is in the state: "reserved_for", the
 *    successor's pid and start time), and the successor's own reattach is accepted and ends it (chaos
 *    soak seed 6: the old VMM, told nothing, had taken over an instance whose device it no longer owned).
 * 4. "reserved_for" members written here, checked at the restart: a live process's (kept, others refused,
 *    ended when it exits), an exited process's, one whose start time is not the pid's (a reused pid), both
 *    dropped and logged, and a malformed one (logged; the instance and its fd kept); and an update record
 *    in phase commit whose new_start is not its successor pid's (a reused pid): no reservation.
 * 5. "held_successor" members (docs/UPDATE.md R14): a successor the state names stays stopped until its old
 *    VMM reattached (killed then) or exited (killed then), or commit_ms passed since the start-up (an older
 *    record without the old VMM: killed then); an old VMM already gone: killed at once; a successor not yet
 *    stopped: stopped; another process's reattach keeps it, and update.start is refused meanwhile; the
 *    instance's release kills it; vlud's SIGTERM leaves it stopped and recorded, the next vlud applies the
 *    same rule; a reused pid is left alone, a malformed member is logged.
 * 6. iommufd-only update records (the instance's "iommufd_update", docs/UPDATE.md "An update of iommufd/VFIO
 *    devices"; the host has no /dev/iommu, so the records are written here, a memfd standing in for the
 *    held iommufd): in phase save the instance is reserved to the old VMM (it holds the charge), in
 *    restore to the successor, in verify with the successor held stopped (R14) to the old VMM, in exec
 *    mode's claim to the one pid (the old image's charge), in restore beside a malformed held_successor to
 *    nobody (the successor may be held stopped); the verdicts name the iommufd/VFIO fds (one not in the store: device_lost); a mixed record's "iommufd"
 *    names are in its verdict too; a malformed record is logged, its instance kept; the state rewritten
 *    keeps the reservation, not the records; a kill -9 restart ends nothing twice; the old VMM's reattach
 *    is accepted and ends the reservation.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "integ.h"
#include "vlu-proto.h"

static struct integ_daemon D;
static struct integ_notify N;

static int restart(const char *dir, int lfd, const char *cfg)
{
	const char *ln[] = { "vlud.socket" };
	struct integ_daemon_opts o = { .config_json = cfg, .notify = &N, .listen_fds = &lfd, .listen_names = ln,
				       .n_listen = 1, .from_store = true };

	integ_notify_lock(&N);
	N.sd.ready = false;
	integ_notify_unlock(&N);
	return integ_daemon_start(&D, dir, &o);
}

/* the current document of a state memfd (index page at 0 names offset and length), malloc()ed */
static char *read_state(int fd)
{
	char index[4096 + 1] = "";
	unsigned long long off = 0, len = 0;
	char *buf;

	if (pread(fd, index, 4096, 0) != 4096 || sscanf(index, "VLUDSTATE 1\n{\"offset\":%llu,\"length\":%llu}", &off,
							  &len) != 2)
		return NULL;
	buf = calloc(1, len + 1);
	if (buf && pread(fd, buf, len, (off_t)off) != (ssize_t)len) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* how many lines of the daemon's log contain s */
static int log_count(const char *s)
{
	FILE *f = fopen(D.log, "re");
	char line[4096];
	int n = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		n += strstr(line, s) != NULL;
	fclose(f);
	return n;
}

/* the fd stored under name, removed from the store (the caller owns it), or -ENOENT */
static int store_take(const char *name)
{
	int fd = -ENOENT;

	integ_notify_lock(&N);
	for (size_t i = 0; i < N.sd.n_store; i++)
		if (strcmp(N.sd.store[i].name, name) == 0) {
			fd = N.sd.store[i].fd;
			N.sd.store[i] = N.sd.store[--N.sd.n_store];
			break;
		}
	integ_notify_unlock(&N);
	return fd;
}

static void store_put(const char *name, int fd)
{
	integ_notify_lock(&N);
	if (N.sd.n_store < INTEG_STORE_MAX) {
		snprintf(N.sd.store[N.sd.n_store].name, sizeof(N.sd.store[0].name), "%s", name);
		N.sd.store[N.sd.n_store++].fd = fd;
	} else
		close(fd);
	integ_notify_unlock(&N);
}

/* a state memfd holding body ("VLUDSTATE 1" and the document) the way vlud writes it (index page, the body
 * at 8192), put into the store as "state"; the new memfd (the caller's) or -errno */
static int craft_state(const char *body)
{
	char index[4096];
	size_t n = strlen(body);
	int fd = memfd_create("vlud-state", MFD_CLOEXEC);

	if (fd < 0)
		return -errno;
	memset(index, ' ', sizeof(index));
	index[snprintf(index, sizeof(index), "VLUDSTATE 1\n{\"offset\":8192,\"length\":%zu}\n", n)] = ' ';
	index[sizeof(index) - 1] = '\n';
	if (pwrite(fd, body, n, 8192) != (ssize_t)n || pwrite(fd, index, sizeof(index), 0) != (ssize_t)sizeof(index)) {
		int k = -errno;

		close(fd);
		return k;
	}
	store_put("state", fcntl(fd, F_DUPFD_CLOEXEC, 3));
	return fd;
}

/* vlud started again from a crafted state: body (freed here; NULL: it could not be made) put into the store by
 * craft_state(), then the start, each a TAP check named by the caller (the log dumped when there is no READY=1);
 * the state memfd (the caller's), or -1 after a failed check */
static int restart_from_state(const char *dir, int lfd, const char *cfg, char *body, const char *written,
			      const char *ready)
{
	int fd = body ? craft_state(body) : -ENOMEM, r;

	free(body);
	if (!tap_check(fd >= 0, written, "%s", strerror(-fd)))
		return -1;
	r = restart(dir, lfd, cfg);
	if (!tap_check(r == 0, ready, "%s", strerror(-r))) {
		integ_daemon_dump_log(&D);
		close(fd);
		return -1;
	}
	return fd;
}

/* process pid's start time, /proc/PID/stat field 22 (counted here after the name's last ')'), or 0 */
static unsigned long long pid_start(pid_t pid)
{
	char path[64], buf[1024];
	unsigned long long v = 0;
	FILE *f;
	size_t n;
	char *p;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
			 &v) != 1)
		return 0;
	return v;
}

/* process pid's state letter, /proc/PID/stat field 3 ('T': stopped), or '?' */
static char pid_state(pid_t pid)
{
	char path[64], buf[1024], c = '?';
	FILE *f;
	size_t n;
	char *p;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return '?';
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%c", &c) != 1)
		return '?';
	return c;
}

/* instance.register {name, reattach:true} from this process (neither VMM) on a new connection */
static json_object *reattach_other(const char *inst)
{
	_cleanup_close_ int c = integ_open_client(D.sock, NULL);
	char args[128];

	snprintf(args, sizeof(args), "{\"name\":\"%s\",\"reattach\":true}", inst);
	return c >= 0 ? integ_call_json(c, "instance.register", args) : NULL;
}

/* the reply is a Busy refusal naming the reservation to pid */
static bool refused_for(json_object *a, pid_t pid)
{
	const char *cls = integ_error_class(a), *desc = integ_error_desc(a);
	char want[64];

	snprintf(want, sizeof(want), "reserved to pid %d,", (int)pid);
	return cls && !strcmp(cls, "Busy") && desc && strstr(desc, want);
}

static bool status_of(const char *inst, json_object **ret)
{
	_cleanup_close_ int c = integ_open_client(D.sock, NULL);
	char args[128];

	snprintf(args, sizeof(args), "{\"instance\":\"%s\"}", inst);
	*ret = c >= 0 ? integ_call_json(c, "update.status", args) : NULL;
	return integ_return(*ret) != NULL;
}

/* the state vlud wrote into its memfd st_fd, given 300 ms to write it: read_state() */
static char *state_now(int st_fd)
{
	integ_notify_pump(&N, 300, NULL);
	return read_state(st_fd);
}

/* a TAP check named name: instance inst's last update (update.status) is update id, its error says what fmt
 * makes, the instance is reserved to pid */
static _printf_(5, 6) bool reserved_verdict(const char *name, const char *inst, int64_t id, pid_t pid,
					    const char *fmt, ...)
{
	_cleanup_json_ json_object *s = NULL;
	bool ok = status_of(inst, &s);
	json_object *last = integ_get(s, "return.last");
	const char *err = integ_str(integ_get(last, "error"));
	char want[300];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(want, sizeof(want), fmt, ap);
	va_end(ap);
	return tap_check(ok && json_object_get_int64(integ_get(last, "id")) == id && err && strstr(err, want) &&
				 json_object_get_int64(integ_get(last, "reattach_reserved_for")) == pid,
			 name, "%s", s ? json_object_to_json_string(s) : "-");
}

/* a TAP check: n lines of the daemon's log contain the text fmt makes */
static _printf_(3, 4) bool logged_n(int n, const char *name, const char *fmt, ...)
{
	char want[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(want, sizeof(want), fmt, ap);
	va_end(ap);
	return tap_check(log_count(want) == n, name, "%d lines of %s", log_count(want), want);
}

/* vlud started again from the store with cfg, a TAP check named name that also holds ok (the log dumped when
 * it fails) */
static bool restart_ready(const char *dir, int lfd, const char *cfg, bool ok, const char *name)
{
	int r = restart(dir, lfd, cfg);

	if (tap_check(ok && r == 0, name, "%s", strerror(-r)))
		return true;
	integ_daemon_dump_log(&D);
	return false;
}

/* vlud killed (SIGKILL) and started again from the store with cfg: restart_ready() */
static bool kill_restart(const char *dir, int lfd, const char *cfg, const char *name)
{
	int ws = integ_daemon_stop(&D, SIGKILL, 5000);

	return restart_ready(dir, lfd, cfg, ws >= 0, name);
}

/* vlud killed (SIGKILL) and the state memfd it left dropped (the store's and *st_fd), for a part that starts
 * it from a state written here; the wait status */
static int kill_drop_state(int *st_fd)
{
	int ws = integ_daemon_stop(&D, SIGKILL, 5000);

	safe_close(store_take("state"));
	*st_fd = safe_close(*st_fd);
	return ws;
}

/* a process (sh, then vluctl) that sends instance.register {inst, reattach:true} once reattacher_go() tells it
 * to: its pid, or -1; go[1] (its standard input) and out[0] (its standard output) are the caller's */
static pid_t reattacher(const char *inst, int go[2], int out[2])
{
	extern char **environ;
	char script[256], sockarg[600];
	char *argv[] = { "sh", "-c", script, (char *)integ_prog("vluctl"), sockarg, NULL };
	posix_spawn_file_actions_t fa;
	pid_t pid = -1;

	snprintf(script, sizeof(script), "read go; exec \"$0\" --socket \"$1\" --json call instance.register "
		 "'{\"name\":\"%s\",\"reattach\":true}'", inst);
	snprintf(sockarg, sizeof(sockarg), "%s", D.sock);
	posix_spawn_file_actions_init(&fa);
	if (pipe2(go, O_CLOEXEC) == 0 && pipe2(out, O_CLOEXEC) == 0) {
		posix_spawn_file_actions_adddup2(&fa, go[0], 0);
		posix_spawn_file_actions_adddup2(&fa, out[1], 1);
		if (posix_spawn(&pid, "/bin/sh", &fa, NULL, argv, environ) != 0)
			pid = -1;
	}
	posix_spawn_file_actions_destroy(&fa);
	go[0] = safe_close(go[0]);
	out[1] = safe_close(out[1]);
	return pid;
}

/* the reattacher pid told to go (*go_w closed), what it prints read from out_r, the process reaped: a TAP check
 * named name that it exited 0 and was told "reattached":true */
static bool reattacher_reattaches(pid_t pid, int *go_w, int out_r, const char *name)
{
	ssize_t k = write(*go_w, "go\n", 3);
	char res[512] = "";
	int ws = -1;

	*go_w = safe_close(*go_w);
	for (size_t got = 0; k == 3 && got < sizeof(res) - 1;) {
		ssize_t m = read(out_r, res + got, sizeof(res) - 1 - got);

		if (m <= 0)
			break;
		got += (size_t)m;
	}
	waitpid(pid, &ws, 0);
	return tap_check(WIFEXITED(ws) && WEXITSTATUS(ws) == 0 && strstr(res, "\"reattached\":true"), name,
			 "exit 0x%x: %s", ws, res);
}

/* waitpid(pid, wst, WNOHANG | flags) every 10 ms until it reports something, at most tries times: what it
 * returned last (0: nothing yet) */
static pid_t wait_child(pid_t pid, int *wst, int flags, int tries)
{
	pid_t got = 0;

	for (int i = 0; i < tries && (got = waitpid(pid, wst, WNOHANG | flags)) == 0; i++)
		usleep(10000);
	return got;
}

/* a child of this test killed and reaped, if there is one (pid > 0) */
static void reap(pid_t pid)
{
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
}

/* how vlud logs the end of a successor it held stopped (R14): the instance, the successor's pid, the update,
 * then why */
#define HELD_KILLED                                                                                             \
	"instance %s: killed the successor %d that vlud had stopped during update %d until the old VMM took the "   \
	"iommufd charge back: "

int main(void)
{
	_cleanup_free_ char *dir = integ_mkdtemp("restart-upd"), *cfg = NULL, *doc = NULL;
	_cleanup_close_ int lfd = -EBADF, vm = -EBADF, ram = -EBADF, st_fd = -EBADF;
	char sock[512];
	int r, ws;

	tap_suite("integ-restart-update");
	signal(SIGPIPE, SIG_IGN);
	if (!dir || integ_notify_open(&N, dir) < 0 || integ_notify_start(&N) < 0) {
		tap_check(false, "setup", "temporary directory / notify socket: %m");
		integ_rmrf(dir);
		return 1;
	}
	snprintf(sock, sizeof(sock), "%s/vlud.sock", dir);
	lfd = sdstore_listen_socket(sock);
	cfg = integ_default_config(dir, NULL);
	if (!tap_check(lfd >= 0 && cfg, "setup-listen-socket", "%s: %s", sock, strerror(-lfd)))
		goto out;
	r = restart(dir, lfd, cfg);
	if (!tap_check(r == 0, "start-ready", "no READY=1: %s", strerror(-r))) {
		integ_daemon_dump_log(&D);
		goto out;
	}

	/* ---- 1. the mapping table survives a kill -9 */
	vm = integ_open_client(D.sock, NULL);
	ram = memfd_create("ram0", MFD_CLOEXEC);
	{
		_cleanup_json_ json_object *a = vm >= 0 ? integ_call_json(vm, "instance.register", "{\"name\":\"vm1\"}") : NULL;
		_cleanup_json_ json_object *b = NULL, *c = NULL;

		if (ram >= 0 && ftruncate(ram, 2 << 20) == 0)
			(void)integ_call(vm, "fd.store", "{\"names\":[\"ram0\"]}", &ram, 1, &b, NULL, 0, NULL);
		c = integ_call_json(vm, "vmm.mappings",
			 "{\"mappings\":[{\"iova\":0,\"size\":2097152,\"memfd\":\"ram0\",\"offset\":0,\"uaddr\":4096,"
			 "\"perm\":\"rw\"}]}");
		if (!tap_check(integ_return(a) && integ_return(b) && integ_return(c), "vmm-store-and-mappings", "%s",
			       json_object_to_json_string(c ? c : b ? b : a)))
			goto out;
	}
	integ_notify_pump(&N, 300, NULL);
	ws = integ_daemon_stop(&D, SIGKILL, 5000);
	tap_check(ws >= 0 && WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL, "kill-9", "wait status 0x%x", ws);
	vm = safe_close(vm);
	r = restart(dir, lfd, cfg);
	if (!tap_check(r == 0, "restart-ready", "%s", strerror(-r)))
		goto out;
	{
		_cleanup_json_ json_object *s = NULL;
		bool ok = status_of("vm1", &s);
		json_object *m = integ_get(s, "return.mappings");

		tap_check(ok && m && json_object_array_length(m) == 1 &&
				  json_object_get_int64(integ_get(json_object_array_get_idx(m, 0), "size")) == 2097152,
			  "mappings-survive-restart", "%s", s ? json_object_to_json_string(s) : "-");
		tap_check(ok && !integ_get(s, "return.last") && !integ_get(s, "return.running"), "idle-nothing-reported",
			  "%s", s ? json_object_to_json_string(s) : "-");
	}
	tap_check(log_count("restarted during the update") == 0, "idle-nothing-logged", "a verdict was logged");

	/* ---- 2. an update record in the state, as the previous vlud would have left it in phase save */
	ws = integ_daemon_stop(&D, SIGKILL, 5000);
	st_fd = store_take("state");
	{
		int held = integ_notify_find(&N, "h1");
		struct stat st;
		char *body = NULL;
		long long now_us = (long long)time(NULL) * 1000000LL;

		if (!tap_check(ws >= 0 && st_fd >= 0 && held >= 0 && fstat(held, &st) == 0, "crafted-state-setup",
			       "state %d, h1 %d", st_fd, held))
			goto out;
		if (asprintf(&body,
			     "VLUDSTATE 1\n{\"next_id\":2,\"written_us\":0,\"instances\":[{\"name\":\"vm9\",\"pid\":%d,"
			     "\"uid\":0,\"gid\":0,\"registered_us\":0,\"orphaned\":false,\"orphaned_us\":0}],"
			     "\"fds\":[{\"id\":1,\"instance\":\"vm9\",\"name\":\"ram0\",\"type\":\"memfd\",\"dev\":%llu,"
			     "\"ino\":%llu,\"rdev\":0,\"created_us\":0}],"
			     "\"updates\":[{\"instance\":\"vm9\",\"id\":41,\"mode\":\"exec\",\"path\":\"C\",\"phase\":\"save\","
			     "\"old_pid\":%d,\"new_pid\":0,\"started_us\":%lld,\"devices\":[{\"name\":\"vdpa:vdpa0\","
			     "\"suspended\":true,\"reset\":false,\"released\":false}]}]}\n",
			     (int)getpid(), (unsigned long long)st.st_dev, (unsigned long long)st.st_ino, (int)getpid(),
			     now_us - 1000000LL) < 0)
			body = NULL;
		close(st_fd);
		st_fd = restart_from_state(dir, lfd, cfg, body, "crafted-state-written",
					   "restart-with-update-record-ready");
		if (st_fd < 0)
			goto out;
	}
	{
		_cleanup_json_ json_object *s = NULL;
		bool ok = status_of("vm9", &s);
		json_object *last = integ_get(s, "return.last");
		const char *err = integ_str(integ_get(last, "error"));
		json_object *lost = integ_get(last, "device_lost");
		json_object *ir = integ_get(last, "interrupted_by_restart");

		tap_check(ok && !integ_get(s, "return.running"), "no-update-running", "%s",
			  s ? json_object_to_json_string(s) : "-");
		tap_check(last && integ_str(integ_get(last, "result")) && !strcmp(integ_str(integ_get(last, "result")), "failed") &&
				  json_object_get_int64(integ_get(last, "id")) == 41 && ir && json_object_get_boolean(ir) &&
				  integ_str(integ_get(last, "phase")) && !strcmp(integ_str(integ_get(last, "phase")), "save"),
			  "verdict-failed-id-phase", "%s", s ? json_object_to_json_string(s) : "-");
		tap_check(err && strstr(err, "vlud restarted during the update (phase save): ") &&
				  strstr(err, "vdpa:vdpa0: no fd held"),
			  "verdict-reason", "%s", err ? err : "-");
		tap_check(lost && json_object_array_length(lost) == 1 &&
				  !strcmp(json_object_get_string(json_object_array_get_idx(lost, 0)), "vdpa:vdpa0"),
			  "verdict-device-lost", "%s", last ? json_object_to_json_string(last) : "-");
	}
	tap_check(log_count("update 41 of vm9: failed: vlud restarted during the update (phase save)") == 1,
		  "verdict-logged-once", "%d lines", log_count("update 41 of vm9: failed"));
	{
		_cleanup_close_ int c = integ_open_client(D.sock, NULL);
		_cleanup_json_ json_object *a = c >= 0 ? integ_call_json(c, "update.claim",
							     "{\"instance\":\"vm9\",\"token\":\"00000000000000000000000000000000\"}")
						       : NULL;
		const char *cls = integ_error_class(a), *desc = integ_error_desc(a);

		tap_check(cls && !strcmp(cls, "PermissionDenied") && desc &&
				  strstr(desc, "update 41 of 'vm9' ended when vlud restarted (phase save)"),
			  "claim-refused-with-reason", "%s", a ? json_object_to_json_string(a) : "-");
	}
	/* the rewritten state: no update record, the verdict kept */
	{
		_cleanup_free_ char *now = state_now(st_fd);

		tap_check(now && !strstr(now, "\"updates\"") && strstr(now, "\"last_update\":{") &&
				  strstr(now, "interrupted_by_restart"),
			  "state-rewritten", "%s", now ? now : "unreadable");
	}
	/* once more: nothing new, the same verdict */
	ws = integ_daemon_stop(&D, SIGKILL, 5000);
	r = restart(dir, lfd, cfg);
	if (!tap_check(ws >= 0 && r == 0, "restart-again-ready", "%s", strerror(-r)))
		goto out;
	{
		_cleanup_json_ json_object *s = NULL;
		bool ok = status_of("vm9", &s);

		tap_check(ok && json_object_get_int64(integ_get(s, "return.last.id")) == 41 &&
				  !strcmp(integ_str(integ_get(s, "return.last.result")) ?: "", "failed"),
			  "verdict-survives-another-restart", "%s", s ? json_object_to_json_string(s) : "-");
	}
	tap_check(log_count("update 41 of vm9: failed") == 1, "not-ended-twice", "%d lines",
		  log_count("update 41 of vm9: failed"));
	/* ---- 3. transfer mode, phase commit, both VMMs alive: the instance is the successor's */
	{
		extern char **environ;
		int go[2] = { -1, -1 }, out[2] = { -1, -1 }, held;
		pid_t old_vmm = -1, succ = -1;
		struct stat st;
		char *body = NULL;
		char *o_argv[] = { "sleep", "60", NULL };

		ws = kill_drop_state(&st_fd);
		held = integ_notify_find(&N, "h1");
		if (posix_spawnp(&old_vmm, "sleep", NULL, NULL, o_argv, environ) != 0)
			old_vmm = -1;
		succ = reattacher("vm8", go, out);
		if (!tap_check(ws >= 0 && held >= 0 && fstat(held, &st) == 0 && old_vmm > 0 && succ > 0,
			       "commit-setup", "h1 %d, old VMM %d, successor %d", held, (int)old_vmm, (int)succ))
			goto part3_end;
		if (asprintf(&body,
			     "VLUDSTATE 1\n{\"next_id\":2,\"written_us\":0,\"instances\":[{\"name\":\"vm8\",\"pid\":%d,"
			     "\"uid\":%u,\"gid\":%u,\"registered_us\":0,\"orphaned\":false,\"orphaned_us\":0}],"
			     "\"fds\":[{\"id\":1,\"instance\":\"vm8\",\"name\":\"ram0\",\"type\":\"memfd\","
			     "\"dev\":%llu,\"ino\":%llu,\"rdev\":0,\"created_us\":0}],"
			     "\"updates\":[{\"instance\":\"vm8\",\"id\":57,\"mode\":\"transfer\",\"path\":\"A\","
			     "\"phase\":\"commit\",\"old_pid\":%d,\"new_pid\":%d,\"new_start\":%llu,\"started_us\":%lld,"
			     "\"devices\":[{\"name\":\"vdpa:vdpa0\",\"suspended\":true,\"reset\":false,"
			     "\"released\":false}]}]}\n",
			     (int)succ, (unsigned)getuid(), (unsigned)getgid(), (unsigned long long)st.st_dev,
			     (unsigned long long)st.st_ino, (int)old_vmm, (int)succ, pid_start(succ),
			     (long long)time(NULL) * 1000000LL - 1000000LL) < 0)
			body = NULL;
		st_fd = restart_from_state(dir, lfd, cfg, body, "commit-state-written", "commit-restart-ready");
		if (st_fd < 0)
			goto part3_end;
		{
			_cleanup_json_ json_object *st_reply = NULL;
			bool ok = status_of("vm8", &st_reply);
			json_object *last = integ_get(st_reply, "return.last");
			const char *err = integ_str(integ_get(last, "error"));

			tap_check(ok && json_object_get_int64(integ_get(last, "id")) == 57 &&
					  json_object_get_int64(integ_get(last, "reattach_reserved_for")) == succ,
				  "commit-reserved-to-successor", "%s", st_reply ? json_object_to_json_string(st_reply) : "-");
			tap_check(err && strstr(err, "(phase commit)") && strstr(err, "reserved to pid"),
				  "commit-reason-says-reserved", "%s", err ? err : "-");
		}
		{
			/* this process is neither VMM: another process of the same uid */
			_cleanup_json_ json_object *a = reattach_other("vm8");

			tap_check(refused_for(a, succ), "commit-other-reattach-refused", "%s",
				  a ? json_object_to_json_string(a) : "-");
		}
		/* the reservation is in the state: the successor's pid, its start time, the update */
		{
			_cleanup_free_ char *now = state_now(st_fd);
			char want[160];

			snprintf(want, sizeof(want), "\"reserved_for\":{\"pid\":%d,\"start\":%llu,\"update\":57}", (int)succ,
				 pid_start(succ));
			tap_check(now && pid_start(succ) && strstr(now, want), "commit-reservation-persisted", "want %s in %s",
				  want, now ? now : "unreadable");
		}
		/* two more kill -9 restarts before the owner reattaches: still reserved, to the same process */
		for (int n = 1; n <= 2; n++) {
			_cleanup_json_ json_object *a = NULL;
			char name[64];

			snprintf(name, sizeof(name), "commit-restart-%d-ready", n + 1);
			if (!kill_restart(dir, lfd, cfg, name))
				goto part3_end;
			a = reattach_other("vm8");
			snprintf(name, sizeof(name), "commit-restart-%d-other-still-refused", n + 1);
			tap_check(refused_for(a, succ) && strstr(integ_error_desc(a), "during update 57"), name, "%s",
				  a ? json_object_to_json_string(a) : "-");
		}
		logged_n(2, "commit-restarts-logged", "instance vm8: still reserved to pid %d (update 57, start time "
			 "%llu)", (int)succ, pid_start(succ));
		/* the successor itself reattaches */
		reattacher_reattaches(succ, &go[1], out[0], "commit-successor-reattaches");
		succ = -1;
		/* its reattach ended the reservation, in the state too */
		{
			_cleanup_free_ char *now = state_now(st_fd);

			tap_check(now && strstr(now, "\"vm8\"") && !strstr(now, "\"reserved_for\""), "commit-reservation-ended",
				  "%s", now ? now : "unreadable");
		}
part3_end:
		safe_close(go[1]);
		safe_close(out[0]);
		reap(old_vmm);
		reap(succ);
	}
	/* ---- 4. reservations the state kept, checked at the restart against the processes: one whose process
	 * lives (kept, until it exits), one whose process exited, one whose pid is another process now (its
	 * start time differs: a reused pid), one malformed (the rest of the state kept) */
	{
		extern char **environ;
		char *l_argv[] = { "sleep", "60", NULL }, *t_argv[] = { "true", NULL };
		pid_t live = -1, dead = -1;
		unsigned long long lstart = 0;
		char *body = NULL, want[256];
		struct stat st;
		int held;

		ws = kill_drop_state(&st_fd);
		held = integ_notify_find(&N, "h1");
		if (posix_spawnp(&live, "sleep", NULL, NULL, l_argv, environ) != 0)
			live = -1;
		if (posix_spawnp(&dead, "true", NULL, NULL, t_argv, environ) != 0 || waitpid(dead, NULL, 0) != dead)
			dead = -1;
		for (int i = 0; live > 0 && i < 100 && !(lstart = pid_start(live)); i++)
			usleep(10000);
		if (!tap_check(ws >= 0 && held >= 0 && fstat(held, &st) == 0 && live > 0 && dead > 0 && lstart,
			       "kept-setup", "h1 %d, live %d (start %llu), dead %d", held, (int)live, lstart, (int)dead))
			goto part4_end;
#define KEPT_INST(name, resv)                                                                                   \
	"{\"name\":\"" name "\",\"pid\":1,\"uid\":%u,\"gid\":%u,\"registered_us\":0,\"orphaned\":true,"         \
	"\"orphaned_us\":0,\"reserved_for\":" resv "}"
		if (asprintf(&body,
			     "VLUDSTATE 1\n{\"next_id\":2,\"written_us\":0,\"instances\":["
			     KEPT_INST("vm4", "{\"pid\":%d}") "," KEPT_INST("vm5", "{\"pid\":%d,\"start\":%llu,\"update\":62}") ","
			     KEPT_INST("vm6", "{\"pid\":%d,\"start\":%llu,\"update\":61}") ","
			     KEPT_INST("vm7", "{\"pid\":%d,\"start\":12345,\"update\":60}") ","
			     "{\"name\":\"vm3\",\"pid\":1,\"uid\":%u,\"gid\":%u,\"registered_us\":0,\"orphaned\":true,"
			     "\"orphaned_us\":0}],"
			     "\"fds\":[{\"id\":1,\"instance\":\"vm4\",\"name\":\"ram0\",\"type\":\"memfd\","
			     "\"dev\":%llu,\"ino\":%llu,\"rdev\":0,\"created_us\":0}],"
			     "\"updates\":[{\"instance\":\"vm3\",\"id\":63,\"mode\":\"transfer\",\"path\":\"A\","
			     "\"phase\":\"commit\",\"old_pid\":%d,\"new_pid\":%d,\"new_start\":%llu,\"started_us\":0,"
			     "\"devices\":[{\"name\":\"vdpa:vdpa0\",\"suspended\":true,\"reset\":false,"
			     "\"released\":false}]}]}\n",
			     (unsigned)getuid(), (unsigned)getgid(), (int)live, (unsigned)getuid(), (unsigned)getgid(), (int)live,
			     lstart, (unsigned)getuid(), (unsigned)getgid(), (int)live, lstart + 1, (unsigned)getuid(),
			     (unsigned)getgid(), (int)dead, (unsigned)getuid(), (unsigned)getgid(),
			     (unsigned long long)st.st_dev, (unsigned long long)st.st_ino, (int)dead, (int)live,
			     lstart + 1) < 0)
			body = NULL;
#undef KEPT_INST
		st_fd = restart_from_state(dir, lfd, cfg, body, "kept-state-written", "kept-restart-ready");
		if (st_fd < 0)
			goto part4_end;
		logged_n(1, "dropped-exited-logged", "instance vm7: the reattach reservation to pid %d (update 60) is "
			 "dropped: the process exited", (int)dead);
		logged_n(1, "dropped-reused-pid-logged", "instance vm6: the reattach reservation to pid %d (update 61) "
			 "is dropped: pid %d is another process now (start time %llu, recorded %llu)", (int)live,
			 (int)live, lstart, lstart + 1);
		tap_check(log_count("state: instance vm4: its reattach reservation is malformed (\"start\" missing") == 1,
			  "dropped-malformed-logged", "no such line");
		/* an update record whose successor pid is another process now (its start time differs): nobody */
		logged_n(1, "record-reused-pid-not-reserved", "update 63 of vm3: pid %d owned the device, but it is "
			 "another process now (start time %llu, recorded %llu): no reservation", (int)live, lstart,
			 lstart + 1);
		{
			_cleanup_json_ json_object *s3 = NULL, *a3 = NULL;
			bool ok = status_of("vm3", &s3);
			json_object *last = integ_get(s3, "return.last");

			tap_check(ok && json_object_get_int64(integ_get(last, "id")) == 63 &&
					  json_object_object_get_ex(last, "reattach_reserved_for", NULL) &&
					  !integ_get(last, "reattach_reserved_for"),
				  "record-reused-pid-verdict", "%s", s3 ? json_object_to_json_string(s3) : "-");
			a3 = reattach_other("vm3");
			tap_check(integ_get(a3, "return.reattached") != NULL, "record-reused-pid-anyone-reattaches", "%s",
				  a3 ? json_object_to_json_string(a3) : "-");
		}
		{
			_cleanup_json_ json_object *a7 = reattach_other("vm7"), *a6 = reattach_other("vm6"),
						   *a4 = reattach_other("vm4"), *a5 = reattach_other("vm5");
			json_object *f4 = integ_get(a4, "return.fds");

			tap_check(integ_get(a7, "return.reattached") != NULL, "dropped-exited-anyone-reattaches", "%s",
				  a7 ? json_object_to_json_string(a7) : "-");
			tap_check(integ_get(a6, "return.reattached") != NULL, "dropped-reused-pid-anyone-reattaches", "%s",
				  a6 ? json_object_to_json_string(a6) : "-");
			/* the malformed record cost the reservation only: the instance and its fd are there */
			tap_check(f4 && json_object_get_int(f4) == 1, "dropped-malformed-nothing-else-lost", "%s",
				  a4 ? json_object_to_json_string(a4) : "-");
			tap_check(refused_for(a5, live) && strstr(integ_error_desc(a5), "during update 62"),
				  "kept-live-other-refused", "%s", a5 ? json_object_to_json_string(a5) : "-");
		}
		{
			_cleanup_free_ char *now = state_now(st_fd);
			const char *k = now ? strstr(now, "\"reserved_for\"") : NULL;

			snprintf(want, sizeof(want), "\"reserved_for\":{\"pid\":%d,\"start\":%llu,\"update\":62}", (int)live,
				 lstart);
			tap_check(k && k == strstr(now, want) && !strstr(k + 1, "\"reserved_for\""), "kept-only-the-live-one",
				  "%s", now ? now : "unreadable");
		}
		/* its process exits: the reservation ends at the next reattach, which is accepted */
		reap(live);
		{
			_cleanup_json_ json_object *a = reattach_other("vm5");

			snprintf(want, sizeof(want), "instance vm5: pid %d, which owned the device when vlud restarted during "
				 "update 62, exited: its reservation ends", (int)live);
			live = -1;
			tap_check(integ_get(a, "return.reattached") != NULL && log_count(want) == 1, "kept-ends-at-exit",
				  "%s; %d lines of %s", a ? json_object_to_json_string(a) : "-", log_count(want), want);
		}
part4_end:
		reap(live);
	}
	/* ---- 5. "held_successor" members (docs/UPDATE.md R14: a successor vlud stopped until the old VMM took the
	 * iommufd charge back).  A restarted vlud keeps such a successor stopped until its old VMM (old_pid,
	 * told by old_start) reattached or exited, or commit_ms passed since the start-up, then kills it; an old
	 * VMM already gone: killed at once; a successor not stopped yet (the previous vlud died before its
	 * SIGSTOP): stopped; a reused pid: left alone; a malformed member: logged, the instance kept; a record
	 * that names pid 1 or a process of another uid than the instance's: refused, nothing signalled.  vlud's
	 * SIGTERM leaves a held successor stopped and recorded for the next vlud when the configuration says the
	 * state outlives a stop (update.held_successor_survives_stop), and kills it by default. */
	{
		extern char **environ;
		char *s_argv[] = { "sleep", "60", NULL }, *t_argv[] = { "true", NULL };
		/* n1: vm10's successor, stopped, its old VMM o1 alive (sleep); n2: vm13's, running (the previous
		 * vlud died before its SIGSTOP), its old VMM o2 reattaches (vluctl); n4: vm15's, stopped, its old
		 * VMM dead; n5: vm16's, stopped, an older record without old_pid (the deadline only); other: vm11's
		 * recorded start time is not its own (a reused pid); n7: vm18's, stopped, its old VMM's pid names
		 * another process now (other, a later start time recorded); n8: vm20's, running, of another uid than
		 * the instance's (refused: it must stay running); n9: vm21's, stopped, its old VMM o3 alive (the
		 * default SIGTERM kills it) */
		pid_t n1 = -1, n2 = -1, n4 = -1, n5 = -1, n6 = -1, n7 = -1, n8 = -1, n9 = -1, o1 = -1, o2 = -1, o3 = -1,
		      dead = -1, other = -1;
		unsigned long long s1 = 0, s2 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0, s8 = 0, s9 = 0, so1 = 0, so2 = 0,
				   so3 = 0, ostart = 0;
		/* commit_ms: long while the test looks (a loaded machine must not reach it), short for the deadline;
		 * the fd store (here the test's) outlives a stop: a SIGTERM leaves held successors stopped */
		_cleanup_free_ char *cfg_long = integ_default_config(dir, "\"timeouts\": {\"update\": {\"commit_ms\": 120000}}, "
								  "\"update\": {\"held_successor_survives_stop\": true}");
		_cleanup_free_ char *cfg_short = integ_default_config(dir, "\"timeouts\": {\"update\": {\"commit_ms\": 3000}}, "
								   "\"update\": {\"held_successor_survives_stop\": true}");
		/* the default: the state is not known to outlive a stop */
		_cleanup_free_ char *cfg_default = integ_default_config(dir, "\"timeouts\": {\"update\": {\"commit_ms\": 120000}}");
		int go[2] = { -1, -1 }, out[2] = { -1, -1 };
		pid_t got9 = -1;
		char *body = NULL, want[300];
		int wst = 0;
		bool up = true;

		ws = kill_drop_state(&st_fd);
		o2 = reattacher("vm13", go, out);
		{
			pid_t *sp[] = { &n1, &n2, &n4, &n5, &n6, &n7, &n8, &n9, &o1, &o3, &other };

			for (size_t i = 0; i < sizeof(sp) / sizeof(sp[0]); i++)
				if (posix_spawnp(sp[i], "sleep", NULL, NULL, s_argv, environ) != 0)
					*sp[i] = -1;
		}
		if (posix_spawnp(&dead, "true", NULL, NULL, t_argv, environ) != 0 || waitpid(dead, NULL, 0) != dead)
			dead = -1;
		for (int i = 0; i < 100 && !((s1 = pid_start(n1)) && (s2 = pid_start(n2)) && (s4 = pid_start(n4)) &&
					     (s5 = pid_start(n5)) && (s6 = pid_start(n6)) && (s7 = pid_start(n7)) &&
					     (s8 = pid_start(n8)) && (s9 = pid_start(n9)) && (so1 = pid_start(o1)) &&
					     (so2 = pid_start(o2)) && (so3 = pid_start(o3)) && (ostart = pid_start(other)));
		     i++)
			usleep(10000);
		for (pid_t *p = (pid_t[]){ n1, n4, n5, n6, n7, n9, 0 }; *p > 0; p++)
			if (kill(*p, SIGSTOP) != 0 || waitpid(*p, &wst, WUNTRACED) != *p || !WIFSTOPPED(wst))
				up = false;
		if (!tap_check(ws >= 0 && up && n1 > 0 && n2 > 0 && n4 > 0 && n5 > 0 && n6 > 0 && n7 > 0 && n8 > 0 &&
				       n9 > 0 && o1 > 0 && o2 > 0 && o3 > 0 && dead > 0 && other > 0 && s1 && s2 && s4 && s5 &&
				       s6 && s7 && s8 && s9 && so1 && so2 && so3 && ostart,
			       "held-setup", "n1 %d n2 %d n4 %d n5 %d o1 %d o2 %d dead %d other %d", (int)n1, (int)n2, (int)n4,
			       (int)n5, (int)o1, (int)o2, (int)dead, (int)other))
			goto part5_end;
#define HELD_INST(name, held)                                                                                   \
	"{\"name\":\"" name "\",\"pid\":1,\"uid\":%u,\"gid\":%u,\"registered_us\":0,\"orphaned\":true,"         \
	"\"orphaned_us\":0,\"held_successor\":" held "}"
#define HELD_OLD "{\"pid\":%d,\"start\":%llu,\"update\":%d,\"old_pid\":%d,\"old_start\":%llu}"
#define U (unsigned)getuid(), (unsigned)getgid()
		if (asprintf(&body,
			     "VLUDSTATE 1\n{\"next_id\":2,\"written_us\":0,\"instances\":["
			     HELD_INST("vm10", HELD_OLD) "," HELD_INST("vm13", HELD_OLD) "," HELD_INST("vm15", HELD_OLD) ","
			     HELD_INST("vm16", "{\"pid\":%d,\"start\":%llu,\"update\":76}") ","
			     HELD_INST("vm17", HELD_OLD) ","
			     HELD_INST("vm11", "{\"pid\":%d,\"start\":%llu,\"update\":71}") ","
			     HELD_INST("vm12", "{\"pid\":%d,\"update\":72}") ","
			     HELD_INST("vm18", HELD_OLD) "," HELD_INST("vm19", HELD_OLD) "," HELD_INST("vm20", HELD_OLD)
			     "],\"fds\":[]}\n",
			     U, (int)n1, s1, 70, (int)o1, so1, U, (int)n2, s2, 73, (int)o2, so2, U, (int)n4, s4, 75, (int)dead,
			     so1, U, (int)n5, s5, U, (int)n6, s6, 77, (int)o1, so1, U, (int)other, ostart + 1, U,
			     (int)other, U, (int)n7, s7, 78, (int)other, ostart + 1, U, 1, 1ULL, 79, (int)o1, so1,
			     (unsigned)getuid() + 1, (unsigned)getgid(), (int)n8, s8, 80, (int)o1, so1) < 0)
			body = NULL;
#undef U
#undef HELD_OLD
#undef HELD_INST
		st_fd = restart_from_state(dir, lfd, cfg_long, body, "held-state-written", "held-restart-ready");
		if (st_fd < 0)
			goto part5_end;
		/* vm13's successor, running, is stopped by the restarted vlud */
		{
			pid_t got = wait_child(n2, &wst, WUNTRACED, 300);

			tap_check(got == n2 && WIFSTOPPED(wst), "held-running-stopped-at-restart", "waitpid %d, status 0x%x",
				  (int)got, wst);
		}
		/* vm15's old VMM is gone: its successor is killed at once */
		{
			pid_t got = wait_child(n4, &wst, 0, 300);

			tap_check(got == n4 && WIFSIGNALED(wst) && WTERMSIG(wst) == SIGKILL, "held-old-gone-killed",
				  "waitpid %d, status 0x%x", (int)got, wst);
			logged_n(1, "held-old-gone-logged", HELD_KILLED "the old VMM %d has exited", "vm15", (int)n4,
				 75, (int)dead);
			if (got == n4)
				n4 = -1;
		}
		/* vm18's old VMM's pid names another process now (its start time): gone, its successor killed */
		{
			pid_t got = wait_child(n7, &wst, 0, 300);

			tap_check(got == n7 && WIFSIGNALED(wst) && WTERMSIG(wst) == SIGKILL, "held-old-reused-pid-killed",
				  "waitpid %d, status 0x%x", (int)got, wst);
			logged_n(1, "held-old-reused-pid-logged", HELD_KILLED "the old VMM %d is gone (pid %d is "
				 "another process now)", "vm18", (int)n7, 78, (int)other, (int)other);
			if (got == n7)
				n7 = -1;
			tap_check(kill(other, 0) == 0 && waitpid(other, &wst, WNOHANG) == 0, "held-old-reused-pid-other-alive",
				  "pid %d", (int)other);
		}
		/* vm19's record names pid 1, vm20's a process of another uid: refused, nothing signalled */
		tap_check(log_count("state: instance vm19: its held successor record names pid 1, which cannot be a "
				    "successor: dropped, nothing signalled") == 1,
			  "held-pid-1-refused", "no such line");
		logged_n(1, "held-other-uid-refused", "state: instance vm20: its held successor record names pid %d, a "
			 "process of uid %u, not the instance's %u: dropped, nothing signalled", (int)n8,
			 (unsigned)getuid(), (unsigned)getuid() + 1);
		/* vm10's, vm13's and vm16's stay stopped (their old VMMs alive, or unknown before commit_ms), every
		 * thread of them (/proc/N/stat shows T, not just a live process) */
		usleep(300000);
		tap_check(waitpid(n1, &wst, WNOHANG) == 0 && pid_state(n1) == 'T' && waitpid(n5, &wst, WNOHANG) == 0 &&
				  pid_state(n5) == 'T' && waitpid(n2, &wst, WNOHANG) == 0 && pid_state(n2) == 'T',
			  "held-old-alive-still-stopped", "n1 %d %c n2 %d %c n5 %d %c", (int)n1, pid_state(n1), (int)n2,
			  pid_state(n2), (int)n5, pid_state(n5));
		tap_check(waitpid(n8, &wst, WNOHANG) == 0 && pid_state(n8) != 'T' && pid_state(n8) != '?',
			  "held-other-uid-not-stopped", "n8 %d %c", (int)n8, pid_state(n8));
		logged_n(1, "held-kept-logged", "instance vm10: the successor %d that vlud had stopped during update "
			 "70 stays stopped until the old VMM %d reattaches or exits, or commit_ms (120000 ms) passed",
			 (int)n1, (int)o1);
		logged_n(1, "held-no-old-pid-kept-logged", "instance vm16: the successor %d that vlud had stopped "
			 "during update 76 stays stopped until commit_ms (120000 ms) passed", (int)n5);
		/* the records stay in the state until the kill: what a further restart knows */
		{
			_cleanup_free_ char *now = state_now(st_fd);
			char w1[200], w2[200];

			snprintf(w1, sizeof(w1), "\"held_successor\":{\"pid\":%d,\"start\":%llu,\"update\":70,\"old_pid\":%d,"
				 "\"old_start\":%llu}", (int)n1, s1, (int)o1, so1);
			snprintf(w2, sizeof(w2), "\"held_successor\":{\"pid\":%d,\"start\":%llu,\"update\":76}", (int)n5, s5);
			tap_check(now && strstr(now, w1) && strstr(now, w2) && !strstr(now, "\"update\":75"),
				  "held-records-kept", "want %s and %s in %s", w1, w2, now ? now : "unreadable");
		}
		/* another process's reattach is not the old VMM's: the successor stays stopped; no update starts on
		 * an instance whose successor is held */
		{
			_cleanup_close_ int c = integ_open_client(D.sock, NULL);
			_cleanup_json_ json_object *a = c >= 0 ? integ_call_json(c, "instance.register",
								     "{\"name\":\"vm10\",\"reattach\":true}")
							       : NULL;
			_cleanup_json_ json_object *b = a ? integ_call_json(c, "update.start",
									    "{\"instance\":\"vm10\",\"mode\":\"transfer\"}")
							  : NULL;
			const char *cls = integ_error_class(b), *desc = integ_error_desc(b);

			tap_check(integ_get(a, "return.reattached") != NULL && waitpid(n1, &wst, WNOHANG) == 0,
				  "held-other-reattach-keeps-it", "%s", a ? json_object_to_json_string(a) : "-");
			snprintf(want, sizeof(want), "the successor %d of update 70 of 'vm10' is held stopped until the old "
				 "VMM %d reattaches", (int)n1, (int)o1);
			tap_check(cls && !strcmp(cls, "Busy") && desc && strstr(desc, want), "held-update-start-refused",
				  "%s", b ? json_object_to_json_string(b) : "-");
		}
		/* vm13's old VMM reattaches: it took the charge back before (the contract), its successor goes */
		{
			pid_t got;

			reattacher_reattaches(o2, &go[1], out[0], "held-old-vmm-reattaches");
			got = wait_child(n2, &wst, 0, 300);
			tap_check(got == n2 && WIFSIGNALED(wst) && WTERMSIG(wst) == SIGKILL, "held-killed-at-old-reattach",
				  "waitpid %d, status 0x%x", (int)got, wst);
			logged_n(1, "held-killed-at-old-reattach-logged", HELD_KILLED "the old VMM %d reattached",
				 "vm13", (int)n2, 73, (int)o2);
			if (got == n2)
				n2 = -1;
			o2 = -1;
		}
		/* the instance released (by an operator): nobody takes the charge back through vlud any more, its
		 * held successor goes */
		{
			_cleanup_close_ int c = integ_open_client(D.sock, NULL);
			_cleanup_json_ json_object *a = c >= 0 ? integ_call_json(c, "instance.release", "{\"name\":\"vm17\"}")
							       : NULL;
			pid_t got = wait_child(n6, &wst, 0, 300);

			tap_check(integ_return(a) && got == n6 && WIFSIGNALED(wst) && WTERMSIG(wst) == SIGKILL,
				  "held-killed-at-release", "%s; waitpid %d, status 0x%x", a ? json_object_to_json_string(a) : "-",
				  (int)got, wst);
			logged_n(1, "held-killed-at-release-logged", HELD_KILLED "the instance was released", "vm17",
				 (int)n6, 77);
			if (got == n6)
				n6 = -1;
		}
		/* a reused pid: left alone; a malformed member: logged */
		tap_check(kill(other, 0) == 0 && waitpid(other, &wst, WNOHANG) == 0, "held-reused-pid-alive", "pid %d",
			  (int)other);
		logged_n(1, "held-reused-pid-logged", "instance vm11: the successor %d that vlud had stopped during "
			 "update 71 is gone (pid %d is another process now)", (int)other, (int)other);
		tap_check(log_count("state: instance vm12: its held successor record is malformed (\"start\" missing") == 1,
			  "held-malformed-logged", "no such line");

		/* vlud's SIGTERM: the successors held stay stopped, the state names them for the next vlud */
		ws = integ_daemon_stop(&D, SIGTERM, 10000);
		tap_check(ws >= 0 && WIFEXITED(ws) && WEXITSTATUS(ws) == 0 && waitpid(n1, &wst, WNOHANG) == 0 &&
				  pid_state(n1) == 'T' && waitpid(n5, &wst, WNOHANG) == 0 && pid_state(n5) == 'T',
			  "held-sigterm-leaves-them-stopped", "wait status 0x%x, n1 %c n5 %c", ws, pid_state(n1),
			  pid_state(n5));
		logged_n(1, "held-sigterm-logged", "instance vm10: the successor %d that vlud had stopped during "
			 "update 70 stays stopped (vlud is exiting)", (int)n1);
		{
			_cleanup_free_ char *now = read_state(st_fd);
			char w1[200];

			snprintf(w1, sizeof(w1), "\"held_successor\":{\"pid\":%d,\"start\":%llu,\"update\":70,\"old_pid\":%d,"
				 "\"old_start\":%llu}", (int)n1, s1, (int)o1, so1);
			tap_check(now && strstr(now, w1) && strstr(now, "\"update\":76") && !strstr(now, "\"update\":73"),
				  "held-sigterm-records-kept", "want %s in %s", w1, now ? now : "unreadable");
		}
		/* the next vlud: still stopped; then the old VMM exits, and its successor goes */
		if (!restart_ready(dir, lfd, cfg_long, true, "held-restart-after-sigterm-ready"))
			goto part5_end;
		snprintf(want, sizeof(want), "instance vm10: the successor %d that vlud had stopped during update 70 stays "
			 "stopped until the old VMM %d reattaches or exits", (int)n1, (int)o1);
		tap_check(log_count(want) == 2 && waitpid(n1, &wst, WNOHANG) == 0, "held-kept-after-sigterm",
			  "%d lines of %s", log_count(want), want);
		reap(o1);
		{
			pid_t got = wait_child(n1, &wst, 0, 300);

			tap_check(got == n1 && WIFSIGNALED(wst) && WTERMSIG(wst) == SIGKILL, "held-killed-at-old-exit",
				  "waitpid %d, status 0x%x", (int)got, wst);
			logged_n(1, "held-killed-at-old-exit-logged", HELD_KILLED "the old VMM %d exited", "vm10",
				 (int)n1, 70, (int)o1);
			if (got == n1)
				n1 = -1;
			o1 = -1;
		}
		/* commit_ms (3000 ms here) after a start-up, a successor whose old VMM is unknown goes */
		if (!kill_restart(dir, lfd, cfg_short, "held-restart-short-commit-ready"))
			goto part5_end;
		{
			pid_t got;

			tap_check(waitpid(n5, &wst, WNOHANG) == 0, "held-deadline-not-yet", "pid %d", (int)n5);
			got = wait_child(n5, &wst, 0, 1500);
			tap_check(got == n5 && WIFSIGNALED(wst) && WTERMSIG(wst) == SIGKILL, "held-killed-at-deadline",
				  "waitpid %d, status 0x%x", (int)got, wst);
			logged_n(1, "held-killed-at-deadline-logged", HELD_KILLED "commit_ms (3000 ms) passed since "
				 "vlud started", "vm16", (int)n5, 76);
			if (got == n5)
				n5 = -1;
		}
		{
			_cleanup_free_ char *now = state_now(st_fd);

			tap_check(now && strstr(now, "\"vm12\"") && !strstr(now, "held_successor"), "held-state-rewritten",
				  "%s", now ? now : "unreadable");
		}
		/* the default (update.held_successor_survives_stop false): vlud cannot tell that its state outlives
		 * a stop (systemd 252, a unit without FileDescriptorStorePreserve=yes drop the store), so its SIGTERM
		 * kills the successor it keeps stopped rather than leave it stopped with nobody to end it */
		ws = kill_drop_state(&st_fd);
		if (asprintf(&body,
			     "VLUDSTATE 1\n{\"next_id\":2,\"written_us\":0,\"instances\":[{\"name\":\"vm21\",\"pid\":1,"
			     "\"uid\":%u,\"gid\":%u,\"registered_us\":0,\"orphaned\":true,\"orphaned_us\":0,"
			     "\"held_successor\":{\"pid\":%d,\"start\":%llu,\"update\":81,\"old_pid\":%d,\"old_start\":%llu}}],"
			     "\"fds\":[]}\n",
			     (unsigned)getuid(), (unsigned)getgid(), (int)n9, s9, (int)o3, so3) < 0)
			body = NULL;
		st_fd = restart_from_state(dir, lfd, cfg_default, body, "held-default-state-written",
					   "held-default-restart-ready");
		if (ws < 0 || st_fd < 0)
			goto part5_end;
		snprintf(want, sizeof(want), "instance vm21: the successor %d that vlud had stopped during update 81 stays "
			 "stopped until the old VMM %d reattaches or exits", (int)n9, (int)o3);
		tap_check(log_count(want) == 1 && pid_state(n9) == 'T', "held-default-kept-while-running",
			  "%d lines of %s; state %c", log_count(want), want, pid_state(n9));
		ws = integ_daemon_stop(&D, SIGTERM, 10000);
		{
			pid_t got = wait_child(n9, &wst, 0, 300);

			tap_check(ws >= 0 && WIFEXITED(ws) && WEXITSTATUS(ws) == 0 && got == n9 && WIFSIGNALED(wst) &&
					  WTERMSIG(wst) == SIGKILL,
				  "held-default-sigterm-kills", "wait status 0x%x; waitpid %d, status 0x%x", ws, (int)got, wst);
			logged_n(1, "held-default-sigterm-logged", HELD_KILLED "vlud is exiting without a state known "
				 "to outlive the stop", "vm21", (int)n9, 81);
			got9 = n9;
			if (got == n9)
				n9 = -1;
		}
		/* the state still names it (nothing is written once vlud exits): the next vlud finds it gone */
		if (!restart_ready(dir, lfd, cfg_default, true, "held-default-restart-after-sigterm-ready"))
			goto part5_end;
		logged_n(1, "held-default-next-vlud-finds-it-gone", "instance vm21: the successor %d that vlud had "
			 "stopped during update 81 has exited", (int)got9);
part5_end:
		safe_close(go[1]);
		safe_close(out[0]);
		for (pid_t *p = (pid_t[]){ n1, n2, n4, n5, n6, n7, n8, n9, o1, o2, o3, other, 0 }; *p; p++)
			reap(*p);
	}
	/* ---- 6. iommufd-only update records, written here (no /dev/iommu on the host): vm20 in phase save (the
	 * old VMM o6 holds the charge: reserved to it; it reattaches at the end), vm21 in restore (reserved to
	 * the successor n7), vm22 in verify with its successor n8 held stopped (R14: reserved to the old VMM o8,
	 * n8 kept stopped), vm23 a mixed record (a device and an iommufd, neither held), vm24 a malformed one, vm25
	 * an exec-mode update in claim (reserved to the one pid, o8 here), vm26 in restore with a malformed
	 * held_successor member (its successor may be held stopped: reserved to nobody) */
	{
		extern char **environ;
		char *s_argv[] = { "sleep", "60", NULL };
		pid_t o6 = -1, n7 = -1, n8 = -1, o8 = -1;
		unsigned long long so6 = 0, s7 = 0, s8 = 0, so8 = 0;
		_cleanup_free_ char *cfg_long = integ_default_config(dir, "\"timeouts\": {\"update\": {\"commit_ms\": 120000}}");
		int go[2] = { -1, -1 }, out[2] = { -1, -1 }, ram6 = -1, wst = 0;
		char *body = NULL, want[400];
		struct stat st6;
		long long now_us = (long long)time(NULL) * 1000000LL;

		ws = kill_drop_state(&st_fd);
		o6 = reattacher("vm20", go, out);
		for (pid_t *p[] = { &n7, &n8, &o8, NULL }, **q = p; *q; q++)
			if (posix_spawnp(*q, "sleep", NULL, NULL, s_argv, environ) != 0)
				**q = -1;
		for (int i = 0; i < 100 && !((so6 = pid_start(o6)) && (s7 = pid_start(n7)) && (s8 = pid_start(n8)) &&
					     (so8 = pid_start(o8)));
		     i++)
			usleep(10000);
		/* vm22's successor: stopped by the previous vlud (R14) */
		if (n8 > 0 && (kill(n8, SIGSTOP) != 0 || waitpid(n8, &wst, WUNTRACED) != n8 || !WIFSTOPPED(wst)))
			n8 = -1;
		/* the memfd standing in for vm20's iommufd (its name is all the record looks at) */
		ram6 = memfd_create("iommufd0", MFD_CLOEXEC);
		if (!tap_check(ws >= 0 && o6 > 0 && n7 > 0 && n8 > 0 && o8 > 0 && so6 && s7 && s8 && so8 && ram6 >= 0 &&
				       fstat(ram6, &st6) == 0,
			       "iof-setup", "o6 %d n7 %d n8 %d o8 %d memfd %d", (int)o6, (int)n7, (int)n8, (int)o8, ram6))
			goto part6_end;
		store_put("h9", ram6);
		ram6 = -1;
#define IOF_INST(name, extra)                                                                                   \
	"{\"name\":\"" name "\",\"pid\":1,\"uid\":%u,\"gid\":%u,\"registered_us\":0,\"orphaned\":true,"         \
	"\"orphaned_us\":0" extra "}"
#define IOF_REC(id, mode, phase)                                                                                \
	"{\"id\":" #id ",\"mode\":\"" mode "\",\"path\":\"A\",\"phase\":\"" phase "\",\"old_pid\":%d,"            \
	"\"old_start\":%llu,\"new_pid\":%d,\"new_start\":%llu,\"started_us\":%lld,\"devices\":[],"
#define U (unsigned)getuid(), (unsigned)getgid()
		if (asprintf(&body,
			     "VLUDSTATE 1\n{\"next_id\":10,\"written_us\":0,\"instances\":["
			     IOF_INST("vm20", ",\"iommufd_update\":" IOF_REC(90, "transfer", "save")
					      "\"iommufd\":[\"iommufd0\",\"vfio:dev0\"]}") ","
			     IOF_INST("vm21", ",\"iommufd_update\":" IOF_REC(91, "transfer", "restore")
					      "\"iommufd\":[\"iommufd1\"]}") ","
			     IOF_INST("vm22", ",\"iommufd_update\":" IOF_REC(92, "transfer", "verify")
					      "\"iommufd\":[\"iommufd2\"]},\"held_successor\":{\"pid\":%d,\"start\":%llu,"
					      "\"update\":92,\"old_pid\":%d,\"old_start\":%llu}") ","
			     IOF_INST("vm23", "") ","
			     IOF_INST("vm25", ",\"iommufd_update\":" IOF_REC(95, "exec", "claim")
					      "\"iommufd\":[\"iommufd5\"]}") ","
			     IOF_INST("vm26", ",\"iommufd_update\":" IOF_REC(96, "transfer", "restore")
					      "\"iommufd\":[\"iommufd6\"]},\"held_successor\":{\"pid\":0}") ","
			     IOF_INST("vm24", ",\"iommufd_update\":{\"id\":94,\"mode\":\"exec\",\"path\":\"A\","
					      "\"phase\":\"save\",\"old_pid\":1,\"new_pid\":0,\"started_us\":0,\"devices\":[],"
					      "\"iommufd\":[]}")
			     "],\"fds\":[{\"id\":9,\"instance\":\"vm20\",\"name\":\"iommufd0\",\"type\":\"memfd\","
			     "\"dev\":%llu,\"ino\":%llu,\"rdev\":0,\"created_us\":0}],"
			     "\"updates\":[{\"instance\":\"vm23\",\"id\":93,\"mode\":\"transfer\",\"path\":\"A\","
			     "\"phase\":\"save\",\"old_pid\":%d,\"old_start\":%llu,\"new_pid\":0,\"started_us\":%lld,"
			     "\"devices\":[{\"name\":\"vdpa:vdpa3\",\"suspended\":true,\"reset\":false,\"released\":false}],"
			     "\"iommufd\":[\"iommufd3\"]}]}\n",
			     U, (int)o6, so6, 0, 0ULL, now_us - 1000000LL,
			     U, (int)o8, so8, (int)n7, s7, now_us - 1000000LL,
			     U, (int)o8, so8, (int)n8, s8, now_us - 1000000LL, (int)n8, s8, (int)o8, so8,
			     U, U, (int)o8, so8, (int)o8, so8, now_us - 1000000LL,
			     U, (int)o8, so8, (int)n7, s7, now_us - 1000000LL,
			     U,
			     (unsigned long long)st6.st_dev, (unsigned long long)st6.st_ino,
			     (int)o8, so8, now_us - 1000000LL) < 0)
			body = NULL;
#undef U
#undef IOF_REC
#undef IOF_INST
		st_fd = restart_from_state(dir, lfd, cfg_long, body, "iof-state-written", "iof-restart-ready");
		if (st_fd < 0)
			goto part6_end;
		{
			_cleanup_json_ json_object *s = NULL;
			bool ok = status_of("vm20", &s);
			json_object *last = integ_get(s, "return.last");
			json_object *fdl = integ_get(last, "iommufd_fds"), *lost = integ_get(last, "device_lost");
			const char *err = integ_str(integ_get(last, "error"));
			char w1[300];

			snprintf(w1, sizeof(w1), "vlud restarted during the update (phase save): before the hand-over, the old "
				 "VMM (pid %d, alive) holds the iommufd charge", (int)o6);
			tap_check(ok && json_object_get_int64(integ_get(last, "id")) == 90 &&
					  !strcmp(integ_str(integ_get(last, "result")) ?: "", "failed") &&
					  json_object_get_boolean(integ_get(last, "interrupted_by_restart")) &&
					  !strcmp(integ_str(integ_get(last, "phase")) ?: "", "save") && !integ_get(s, "return.running"),
				  "iof-save-verdict", "%s", s ? json_object_to_json_string(s) : "-");
			tap_check(err && strstr(err, w1) && strstr(err, "iommufd0: held") &&
					  strstr(err, "vfio:dev0: no fd held (missing from the fd store)") &&
					  strstr(err, "holds the iommufd charge): only it reattaches"),
				  "iof-save-reason", "%s", err ? err : "-");
			tap_check(fdl && json_object_array_length(fdl) == 2 &&
					  !strcmp(json_object_get_string(json_object_array_get_idx(fdl, 0)), "iommufd0") &&
					  lost && json_object_array_length(lost) == 1 &&
					  !strcmp(json_object_get_string(json_object_array_get_idx(lost, 0)), "vfio:dev0"),
				  "iof-save-fds-and-lost", "%s", last ? json_object_to_json_string(last) : "-");
			tap_check(json_object_get_int64(integ_get(last, "reattach_reserved_for")) == o6,
				  "iof-save-reserved-to-old", "%s", last ? json_object_to_json_string(last) : "-");
		}
		tap_check(log_count("update 90 of vm20: failed: vlud restarted during the update (phase save)") == 1,
			  "iof-save-logged-once", "%d lines", log_count("update 90 of vm20: failed"));
		{
			_cleanup_json_ json_object *a = reattach_other("vm20");

			tap_check(refused_for(a, o6) && strstr(integ_error_desc(a), "during update 90"), "iof-save-other-refused",
				  "%s", a ? json_object_to_json_string(a) : "-");
		}
		reserved_verdict("iof-restore-reserved-to-successor", "vm21", 91, n7,
				 "(phase restore): the successor (pid %d, alive) had claimed every fd", (int)n7);
		reserved_verdict("iof-held-reserved-to-old", "vm22", 92, o8,
				 "(phase verify): the successor (pid %d) had failed and was held stopped for the old "
				 "VMM's take-back of the iommufd charge: the old VMM (pid %d, alive) takes it back",
				 (int)n8, (int)o8);
		{
			_cleanup_json_ json_object *a = reattach_other("vm22");

			tap_check(refused_for(a, o8), "iof-held-other-refused", "%s", a ? json_object_to_json_string(a) : "-");
			usleep(200000);
			tap_check(waitpid(n8, &wst, WNOHANG) == 0 && pid_state(n8) == 'T', "iof-held-successor-kept",
				  "pid %d state %c", (int)n8, pid_state(n8));
		}
		{
			_cleanup_json_ json_object *s = NULL;
			bool ok = status_of("vm23", &s);
			json_object *last = integ_get(s, "return.last");
			json_object *fdl = integ_get(last, "iommufd_fds"), *lost = integ_get(last, "device_lost");
			const char *err = integ_str(integ_get(last, "error"));

			tap_check(ok && json_object_get_int64(integ_get(last, "id")) == 93 && err &&
					  strstr(err, "vdpa:vdpa3: no fd held") && strstr(err, "iommufd3: no fd held") && fdl &&
					  json_object_array_length(fdl) == 1 && lost && json_object_array_length(lost) == 2,
				  "iof-mixed-verdict-names-iommufd", "%s", s ? json_object_to_json_string(s) : "-");
		}
		reserved_verdict("iof-exec-claim-reserved-to-the-pid", "vm25", 95, o8,
				 "(phase claim): before the claim, the iommufd charge is the old image's (pid %d, "
				 "alive; it may have exec'ed", (int)o8);
		{
			/* a malformed held successor member: the successor may be held stopped, so nobody is reserved */
			_cleanup_json_ json_object *s = NULL;
			bool ok = status_of("vm26", &s);
			json_object *last = integ_get(s, "return.last");
			const char *err = integ_str(integ_get(last, "error"));

			tap_check(ok && json_object_get_int64(integ_get(last, "id")) == 96 && err &&
					  strstr(err, "reserved to nobody: the state's record of a held successor is malformed") &&
					  integ_get(last, "reattach_reserved_for") == NULL,
				  "iof-held-malformed-reserved-to-nobody", "%s", s ? json_object_to_json_string(s) : "-");
		}
		{
			_cleanup_json_ json_object *s = NULL;
			bool ok = status_of("vm24", &s);

			tap_check(ok && !integ_get(s, "return.last") &&
					  log_count("state: instance vm24: its iommufd-only update record is malformed "
						    "(\"iommufd\" not of 1..32 names): dropped, the rest of the state is kept") == 1,
				  "iof-malformed-logged-instance-kept", "%s", s ? json_object_to_json_string(s) : "-");
		}
		/* the rewritten state: no record, the reservations and the fd kept */
		{
			_cleanup_free_ char *now = state_now(st_fd);

			snprintf(want, sizeof(want), "\"reserved_for\":{\"pid\":%d,\"start\":%llu,\"update\":90}", (int)o6, so6);
			tap_check(now && !strstr(now, "iommufd_update") && !strstr(now, "\"updates\"") && strstr(now, want) &&
					  strstr(now, "\"name\":\"iommufd0\""),
				  "iof-state-rewritten", "want %s in %s", want, now ? now : "unreadable");
		}
		/* a kill -9 restart: still reserved, nothing ended twice */
		if (!kill_restart(dir, lfd, cfg_long, "iof-restart-again-ready"))
			goto part6_end;
		{
			_cleanup_json_ json_object *a = reattach_other("vm20"), *s = NULL;
			bool ok = status_of("vm20", &s);

			tap_check(refused_for(a, o6) && ok && json_object_get_int64(integ_get(s, "return.last.id")) == 90 &&
					  log_count("update 90 of vm20: failed") == 1,
				  "iof-still-reserved-not-ended-twice", "%s; %d lines", a ? json_object_to_json_string(a) : "-",
				  log_count("update 90 of vm20: failed"));
		}
		/* the old VMM, which holds the charge, reattaches */
		reattacher_reattaches(o6, &go[1], out[0], "iof-old-vmm-reattaches");
		o6 = -1;
		{
			_cleanup_free_ char *now = state_now(st_fd);

			tap_check(now && strstr(now, "\"vm20\"") && !strstr(now, "\"update\":90}"), "iof-reservation-ended",
				  "%s", now ? now : "unreadable");
		}
part6_end:
		safe_close(go[1]);
		safe_close(out[0]);
		safe_close(ram6);
		for (pid_t *p = (pid_t[]){ o6, n7, n8, o8, 0 }; *p; p++)
			reap(*p);
	}
	ws = integ_daemon_stop(&D, SIGTERM, 10000);
	tap_check(ws >= 0 && WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "final-clean-exit", "wait status 0x%x", ws);
	if (tap_failures())
		integ_daemon_dump_log(&D);
out:
	if (D.pid > 0)
		integ_daemon_stop(&D, SIGKILL, 1000);
	integ_notify_close(&N);
	integ_rmrf(dir);
	return tap_exit_status();
}
