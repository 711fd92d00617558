/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-lib-roundtrip.c - fd round trips between two processes through the built daemon, with the real
 * client library (libvlu):  process A registers, stores a guest-RAM memfd (data written through a shared
 * mapping) and an eventfd (count written), and leaves;  process B reattaches to the orphaned instance,
 * retrieves both, reads A's data and count, writes its own;  this test proves with kcmp(KCMP_FILE) that
 * A's and B's fds are the same open files, and A reads what B wrote.  Also: libvlu's error mapping and
 * vlu_last_error() on refusals, events through vlu_process(), status and fd.list through the wrappers.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "integ.h"
#include "vlu.h"

#define RAM_SIZE (2u << 20)

static struct integ_daemon D;

struct report {
	pid_t pid;
	int fd_ram, fd_kick;
	int status; /* 0 ok, else the step that failed */
	char why[200];
};

static void report(int wfd, struct report *r)
{
	if (write(wfd, r, sizeof(*r)) != sizeof(*r))
		_exit(99);
}

/* process A: register, store, leave the daemon (instance orphaned), keep its fds; then on request
 * read what B wrote */
static void proc_a(int wfd, int rfd)
{
	struct report rep = { .pid = getpid() };
	struct vlu *v = NULL;
	const char *names[] = { "ram", "kick" };
	int fds[2];
	char *mem;
	char c;
	int r;

	fds[0] = memfd_create("guest-ram", MFD_CLOEXEC);
	fds[1] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fds[0] < 0 || fds[1] < 0 || ftruncate(fds[0], RAM_SIZE) < 0)
		rep.status = 1;
	mem = rep.status ? MAP_FAILED : mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], 0);
	if (mem == MAP_FAILED)
		rep.status = 2;
	if (!rep.status) {
		memcpy(mem, "written-by-A", 13);
		memcpy(mem + RAM_SIZE - 13, "end-of-ram-A", 13);
		eventfd_write(fds[1], 7);
	}
	if (!rep.status && (r = vlu_connect(D.sock, 5000, &v)) < 0) {
		rep.status = 3;
		snprintf(rep.why, sizeof(rep.why), "vlu_connect: %s", strerror(-r));
	}
	if (!rep.status && (r = vlu_register(v, "vmrt", false)) < 0) {
		rep.status = 4;
		snprintf(rep.why, sizeof(rep.why), "vlu_register: %s", strerror(-r));
	}
	if (!rep.status && (r = vlu_fd_store(v, names, fds, 2, false)) < 0) {
		const char *cls = NULL, *desc = NULL;
		vlu_last_error(v, &cls, &desc);
		rep.status = 5;
		snprintf(rep.why, sizeof(rep.why), "vlu_fd_store: %s (%s: %s)", strerror(-r), cls ? cls : "-",
			 desc ? desc : "-");
	}
	vlu_close(v); /* A leaves; its instance stays (orphaned) with the fds */
	rep.fd_ram = fds[0];
	rep.fd_kick = fds[1];
	report(wfd, &rep);
	if (rep.status)
		_exit(rep.status);
	/* wait for B to have written, then read through our own fds */
	if (read(rfd, &c, 1) != 1)
		_exit(20);
	{
		eventfd_t val = 0;
		bool ok = memcmp(mem + 4096, "written-by-B", 13) == 0 && eventfd_read(fds[1], &val) == 0 && val == 9;
		_exit(ok ? 0 : 21);
	}
}

/* process B: reattach, retrieve, read A's data, write its own */
static void proc_b(int wfd, int rfd)
{
	struct report rep = { .pid = getpid() };
	struct vlu *v = NULL;
	const char *names[] = { "ram", "kick" };
	int fds[2] = { -EBADF, -EBADF };
	char *mem = MAP_FAILED;
	eventfd_t val = 0;
	char c;
	int r;

	if ((r = vlu_connect(D.sock, 5000, &v)) < 0) {
		rep.status = 1;
		snprintf(rep.why, sizeof(rep.why), "vlu_connect: %s", strerror(-r));
	}
	if (!rep.status && (r = vlu_register(v, "vmrt", true)) < 0) {
		const char *cls = NULL, *desc = NULL;
		vlu_last_error(v, &cls, &desc);
		rep.status = 2;
		snprintf(rep.why, sizeof(rep.why), "vlu_register(reattach): %s (%s: %s)", strerror(-r), cls ? cls : "-",
			 desc ? desc : "-");
	}
	if (!rep.status && (r = vlu_fd_retrieve(v, names, 2, fds)) < 0) {
		rep.status = 3;
		snprintf(rep.why, sizeof(rep.why), "vlu_fd_retrieve: %s", strerror(-r));
	}
	if (!rep.status) {
		mem = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], 0);
		if (mem == MAP_FAILED || memcmp(mem, "written-by-A", 13) != 0 ||
		    memcmp(mem + RAM_SIZE - 13, "end-of-ram-A", 13) != 0) {
			rep.status = 4;
			snprintf(rep.why, sizeof(rep.why), "memfd does not hold A's data");
		} else if (eventfd_read(fds[1], &val) < 0 || val != 7) {
			rep.status = 5;
			snprintf(rep.why, sizeof(rep.why), "eventfd count %llu, want 7", (unsigned long long)val);
		} else {
			memcpy(mem + 4096, "written-by-B", 13);
			eventfd_write(fds[1], 9);
		}
	}
	rep.fd_ram = fds[0];
	rep.fd_kick = fds[1];
	report(wfd, &rep);
	if (read(rfd, &c, 1) != 1) /* stay alive (fds open) until the parent has compared */
		_exit(20);
	vlu_close(v);
	_exit(rep.status);
}

static pid_t spawn(void (*fn)(int, int), int *ret_rfd, int *ret_wfd)
{
	int up[2], down[2];
	pid_t pid;

	if (pipe2(up, O_CLOEXEC) < 0 || pipe2(down, O_CLOEXEC) < 0)
		return -1;
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		close(up[0]);
		close(down[1]);
		fn(up[1], down[0]);
		_exit(98);
	}
	close(up[1]);
	close(down[0]);
	*ret_rfd = up[0];
	*ret_wfd = down[1];
	return pid;
}

static bool get_report(int rfd, struct report *r)
{
	struct pollfd p = { .fd = rfd, .events = POLLIN };
	return poll(&p, 1, 15000) == 1 && read(rfd, r, sizeof(*r)) == sizeof(*r);
}

static int n_events;
static void on_event(struct vlu *v, const char *name, json_object *ev, void *ud)
{
	if (name && strcmp(name, "fd.stored") == 0)
		n_events++;
}

static void test_library_api(void)
{
	struct vlu *v = NULL, *sub = NULL;
	json_object *j = NULL;
	const char *cls = NULL, *desc = NULL;
	const char *nm[] = { "nope" };
	int fd = -EBADF, r, maj = -1, min = -1, mic = -1;

	r = vlu_connect(D.sock, 5000, &v);
	if (!tap_check(r == 0, "lib-connect", "%s", strerror(-r)))
		return;
	vlu_server_version(v, &maj, &min, &mic);
	tap_check(maj == 1 && vlu_server_package(v), "lib-server-version", "major %d package %s", maj,
		  vlu_server_package(v) ? vlu_server_package(v) : "(null)");
	r = vlu_status(v, &j);
	tap_check(r == 0 && j && json_object_get_int(integ_get(j, "pid")) == D.pid, "lib-status", "r=%d %s", r,
		  j ? json_object_to_json_string(j) : "-");
	json_object_put(j);
	j = NULL;

	r = vlu_call(v, "no.such.command", NULL, NULL, 0, 0, NULL, NULL, NULL);
	tap_check(r == -ENOSYS && vlu_last_error(v, &cls, &desc) == 0 && cls && strcmp(cls, "CommandNotFound") == 0,
		  "lib-unknown-command", "r=%d class %s", r, cls ? cls : "-");

	r = vlu_fd_retrieve(v, nm, 1, &fd);
	tap_check(r < 0 && fd == -EBADF, "lib-retrieve-unregistered-refused", "r=%d", r);

	r = vlu_register(v, "vmlib", false);
	tap_check(r == 0, "lib-register", "%s", strerror(-r));
	r = vlu_fd_retrieve(v, nm, 1, &fd);
	cls = NULL;
	tap_check(r == -ENOENT && vlu_last_error(v, &cls, &desc) == 0 && cls && strcmp(cls, "NotFound") == 0,
		  "lib-retrieve-unknown-name", "r=%d class %s", r, cls ? cls : "-");

	fd = -EBADF;
	r = vlu_device_open(v, "/dev/null", &fd, NULL);
	cls = NULL;
	desc = NULL;
	tap_check(r < 0 && fd == -EBADF && vlu_last_error(v, &cls, &desc) == 0 && desc, "lib-device-open-refused",
		  "r=%d class %s", r, cls ? cls : "-");

	/* device.reopen through its wrapper: the real daemon's refusal (the reopen of a real device runs in the
	 * rig, qemu-vluctl-run; the reply's checks in test-lib-strict) */
	cls = desc = NULL;
	r = vlu_device_reopen(v, "vdpa:vdpa0", 0, &fd, &j);
	tap_check(r == -ENOENT && fd == -EBADF && !j && vlu_last_error(v, &cls, &desc) == 0 && cls &&
			  strcmp(cls, "NotFound") == 0 && strstr(desc, "holds no fd named"),
		  "lib-device-reopen-not-held", "r=%d class %s %s", r, cls ? cls : "-", desc ? desc : "-");
	r = vlu_device_reopen(v, NULL, 0, &fd, &j);
	tap_check(r == -EINVAL && fd == -EBADF && !j,
		  "lib-device-reopen-no-name", "r=%d", r);

	/* events through the caller's own loop: poll(vlu_get_fd) + vlu_process */
	r = vlu_connect(D.sock, 5000, &sub);
	if (r == 0) {
		vlu_set_event_callback(sub, on_event, NULL);
		r = vlu_subscribe(sub, NULL);
	}
	if (tap_check(r == 0, "lib-subscribe", "%s", strerror(-r))) {
		int e = eventfd(0, EFD_CLOEXEC);
		const char *en[] = { "ev" };
		struct pollfd p = { .fd = vlu_get_fd(sub), .events = POLLIN };

		r = vlu_fd_store(v, en, &e, 1, false);
		close(e);
		for (int k = 0; k < 20 && n_events == 0; k++)
			if (poll(&p, 1, 250) == 1)
				vlu_process(sub);
		tap_check(r == 0 && n_events == 1, "lib-event-via-process", "store r=%d, %d fd.stored events", r,
			  n_events);
		r = vlu_fd_list(v, NULL, &j);
		tap_check(r == 0 && json_object_array_length(integ_get(j, "fds")) == 1, "lib-fd-list", "r=%d %s", r,
			  j ? json_object_to_json_string(j) : "-");
		json_object_put(j);
		j = NULL;
		/* an eventfd is no device: refused, the held fd untouched */
		cls = desc = NULL;
		fd = -EBADF;
		r = vlu_device_reopen(v, "ev", 0, &fd, &j);
		tap_check(r == -EINVAL && fd == -EBADF && !j && vlu_last_error(v, &cls, &desc) == 0 && cls &&
				  strcmp(cls, "InvalidArgument") == 0,
			  "lib-device-reopen-not-a-device", "r=%d class %s %s", r, cls ? cls : "-", desc ? desc : "-");
		r = vlu_fd_list(v, NULL, &j);
		tap_check(r == 0 && json_object_array_length(integ_get(j, "fds")) == 1 &&
				  !strcmp(integ_str(integ_get(json_object_array_get_idx(integ_get(j, "fds"), 0), "name")) ?: "",
					  "ev"),
			  "lib-device-reopen-refusal-changes-nothing", "r=%d %s", r, j ? json_object_to_json_string(j) : "-");
		json_object_put(j);
		j = NULL;
		r = vlu_fd_remove(v, en, 1, NULL);
		tap_check(r == 1, "lib-fd-remove", "r=%d", r);
	}
	vlu_close(sub);
	vlu_close(v);
}

int main(void)
{
	_cleanup_free_ char *dir = integ_mkdtemp("roundtrip");
	struct report ra = { 0 }, rb = { 0 };
	int a_r = -EBADF, a_w = -EBADF, b_r = -EBADF, b_w = -EBADF, st, r;
	pid_t a, b = -1;

	tap_suite("integ-lib");
	signal(SIGPIPE, SIG_IGN);
	if (!dir) {
		tap_check(false, "setup", "mkdtemp: %m");
		return 1;
	}
	r = integ_daemon_start(&D, dir, NULL);
	if (!tap_check(r == 0, "start-ready", "daemon not accepting: %s", strerror(-r))) {
		integ_daemon_dump_log(&D);
		goto out;
	}

	test_library_api();

	a = spawn(proc_a, &a_r, &a_w);
	if (!tap_check(a > 0 && get_report(a_r, &ra) && ra.status == 0, "roundtrip-a-store", "A step %d: %s",
		       ra.status, ra.why))
		goto reap;
	b = spawn(proc_b, &b_r, &b_w);
	if (!tap_check(b > 0 && get_report(b_r, &rb) && rb.status == 0, "roundtrip-b-retrieve-reads-a", "B step %d: %s",
		       rb.status, rb.why))
		goto reap;
	tap_check(integ_kcmp_file(ra.pid, ra.fd_ram, rb.pid, rb.fd_ram) == 0, "roundtrip-kcmp-memfd",
		  "kcmp(A %d, B %d) != 0: not the same file", ra.fd_ram, rb.fd_ram);
	tap_check(integ_kcmp_file(ra.pid, ra.fd_kick, rb.pid, rb.fd_kick) == 0, "roundtrip-kcmp-eventfd",
		  "kcmp(A %d, B %d) != 0: not the same file", ra.fd_kick, rb.fd_kick);
	tap_check(integ_kcmp_file(ra.pid, ra.fd_ram, rb.pid, rb.fd_kick) != 0, "roundtrip-kcmp-distinct",
		  "kcmp says memfd and eventfd are the same file");
	/* A reads what B wrote */
	if (write(a_w, "r", 1) == 1 && waitpid(a, &st, 0) == a) {
		tap_check(WIFEXITED(st) && WEXITSTATUS(st) == 0, "roundtrip-a-read-b", "A exit status 0x%x", st);
		a = -1;
	}
reap:
	if (a_w >= 0 && write(a_w, "x", 1) < 0) {
	}
	if (b_w >= 0 && write(b_w, "x", 1) < 0) {
	}
	if (a > 0)
		waitpid(a, &st, 0);
	if (b > 0) {
		waitpid(b, &st, 0);
		tap_check(WIFEXITED(st) && WEXITSTATUS(st) == 0, "roundtrip-b-exit", "B exit status 0x%x", st);
	}
	safe_close(a_r);
	safe_close(a_w);
	safe_close(b_r);
	safe_close(b_w);
	r = integ_daemon_stop(&D, SIGTERM, 10000);
	tap_check(r >= 0 && WIFEXITED(r) && WEXITSTATUS(r) == 0, "sigterm-clean-exit", "wait status 0x%x", r);
	if (tap_failures())
		integ_daemon_dump_log(&D);
out:
	if (D.pid > 0)
		integ_daemon_stop(&D, SIGKILL, 1000);
	integ_rmrf(dir);
	return tap_exit_status();
}
