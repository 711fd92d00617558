/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-lib-strict.c - libvlu holds the strict rules in both directions (docs/PROTOCOL.md section 1):
 *   - against a fake daemon (a child process on a real SOCK_SEQPACKET socket that answers each request
 *     with a reply breaking one rule: overlong UTF-8, a surrogate, a code point above U+10FFFF, a cut
 *     character, \u0000 in a member name, 1e999, Infinity, NaN, a raw tab, a lone surrogate escape, an
 *     integer beyond 64 bits): every call fails with -EPROTO at once (not at its timeout), and the next
 *     call on the same connection, answered properly, works;
 *   - against the real daemon: a call whose command or arguments hold invalid UTF-8, NUL or a non-finite
 *     number is refused with -EINVAL before anything is sent, and the connection keeps working;
 *   - vlu_device_reopen() against a fake daemon's odd and hostile device.reopen replies (no fd, two, not a
 *     character device, members missing or of the wrong type, another fd's name or rdev): -EPROTO, nothing
 *     written, every fd of the reply closed; and vluctl run, which uses it, refusing such a reply with the
 *     reason (the program not started) and placing a faithful reply's fd at the number named.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
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
#include "vlu.h"

static struct integ_daemon D;

/* each a reply without its id (added as ,"id":N}) */
static const struct {
	const char *name, *body;
} bad_replies[] = {
	{ "overlong", "{\"return\":{\"x\":\"\xc0\x80\"}" },
	{ "surrogate-utf8", "{\"return\":{\"x\":\"\xed\xa0\x80\"}" },
	{ "above-10ffff", "{\"return\":{\"x\":\"\xf4\x90\x80\x80\"}" },
	{ "cut-character", "{\"error\":{\"class\":\"Busy\",\"desc\":\"cut \xe2\x82\"}" },
	{ "nul-in-member-name", "{\"return\":{\"a\\u0000b\":1}" },
	{ "exp-overflow", "{\"return\":{\"x\":1e999}" },
	{ "infinity", "{\"return\":{\"x\":Infinity}" },
	{ "nan", "{\"return\":{\"x\":NaN}" },
	{ "raw-tab", "{\"return\":{\"x\":\"a\tb\"}" },
	{ "lone-surrogate-escape", "{\"return\":{\"x\":\"\\udc00\"}" },
	{ "integer-beyond-64-bits", "{\"return\":{\"x\":99999999999999999999}" },
};

/* The fake daemons below: accept one connection on lfd and greet it like vlud (exits 2 on failure) */
static int fake_accept(int lfd)
{
	const char *greeting = "{\"VLU\":{\"version\":{\"major\":1,\"minor\":0,\"micro\":0,\"package\":\"fake\"},"
			       "\"capabilities\":[]}}";
	int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

	if (c < 0 || vlu_msg_send(c, greeting, strlen(greeting), NULL, 0) < 0)
		_exit(2);
	return c;
}

/* the next request on c (*req owned by the caller; *id and *exec borrowed from it): false at EOF; exits 3 on
 * a malformed one */
static bool fake_request(int c, json_object **req, json_object **id, json_object **exec)
{
	static char buf[VLU_DEFAULT_MAX_MSG_BYTES + 1];
	ssize_t n = vlu_msg_recv(c, buf, sizeof(buf), NULL, 0, NULL);

	if (n <= 0)
		return false;
	if (vlu_json_parse(buf, (size_t)n, 16, req) < 0 || !json_object_object_get_ex(*req, "id", id) ||
	    !json_object_object_get_ex(*req, "execute", exec))
		_exit(3);
	return true;
}

/* The fake daemon: greeting, then answer request k (after capabilities) with bad_replies[k/2] when k is
 * even and a proper reply when k is odd.  Exits at EOF. */
static void fake_daemon(int lfd)
{
	int c = fake_accept(lfd);
	size_t k = 0;

	for (;;) {
		_cleanup_json_ json_object *req = NULL;
		json_object *id = NULL, *exec = NULL;
		char reply[512];

		if (!fake_request(c, &req, &id, &exec))
			_exit(0);
		if (strcmp(json_object_get_string(exec), "capabilities") == 0 || k % 2 == 1 ||
		    k / 2 >= ELEMENTSOF(bad_replies))
			snprintf(reply, sizeof(reply), "{\"return\":{\"ok\":true},\"id\":%lld}",
				 (long long)json_object_get_int64(id));
		else
			snprintf(reply, sizeof(reply), "%s,\"id\":%lld}", bad_replies[k / 2].body,
				 (long long)json_object_get_int64(id));
		if (strcmp(json_object_get_string(exec), "capabilities") != 0)
			k++;
		if (vlu_msg_send(c, reply, strlen(reply), NULL, 0) < 0)
			_exit(4);
	}
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_fake_daemon(const char *dir)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_close_ int lfd = -EBADF;
	struct vlu *v = NULL;
	int status = -1, r;
	pid_t pid;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/fake.sock", dir);
	lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (!tap_check(lfd >= 0 && bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(lfd, 4) == 0,
		       "fake/listen", "%m"))
		return;
	pid = fork();
	if (pid == 0)
		fake_daemon(lfd);
	r = vlu_connect(sa.sun_path, 5000, &v);
	if (!tap_check(r == 0, "fake/connect", "vlu_connect: %s", strerror(-r)))
		goto out;
	for (size_t i = 0; i < ELEMENTSOF(bad_replies); i++) {
		char name[96];
		_cleanup_json_ json_object *ret = NULL;
		int64_t t0 = now_ms();

		snprintf(name, sizeof(name), "fake/refused/%s", bad_replies[i].name);
		r = vlu_call(v, "status", NULL, NULL, 0, 5000, &ret, NULL, NULL);
		tap_check(r == -EPROTO && !ret && now_ms() - t0 < 2500, name,
			  "want -EPROTO at once, got %s after %lld ms", strerror(-r), (long long)(now_ms() - t0));
		json_object_put(ret);
		ret = NULL;
		snprintf(name, sizeof(name), "fake/next-call-works/%s", bad_replies[i].name);
		r = vlu_call(v, "status", NULL, NULL, 0, 5000, &ret, NULL, NULL);
		tap_check(r == 0 && json_object_get_boolean(json_object_object_get(ret, "ok")), name, "%s",
			  strerror(-r));
	}
out:
	vlu_close(v);
	if (pid > 0) {
		waitpid(pid, &status, 0);
		tap_check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "fake/daemon-exit", "status %d", status);
	}
}

/* ---- vlu_device_reopen() against odd and hostile replies of a fake daemon (docs/PROTOCOL.md device.reopen):
 * each case is the reply's "return" (its one %s: the rdev of /dev/null, for a faithful one) and the fds it
 * carries */
enum reopen_fds { RF_DEVNULL, RF_NONE, RF_TWO, RF_MEMFD, RF_OPATH, RF_RDONLY };
#define RO_FD(extra) "{\"name\":\"vdpa:vdpa0\",\"type\":\"vhost-vdpa\",\"dev\":5,\"ino\":9" extra "}"
#define RO_DEV "\"device\":{\"name\":\"vdpa0\",\"path\":\"/dev/vhost-vdpa-0\",\"status\":0}"
#define RO_GOOD "{\"fds\":[" RO_FD(",\"rdev\":%s") "]," RO_DEV ",\"release_ms\":12.5,\"total_ms\":13.0}"
static const struct {
	const char *name, *ret;
	enum reopen_fds fds;
	int want;
} reopen_cases[] = {
	{ "faithful", RO_GOOD, RF_DEVNULL, 0 },
	{ "no-fd", RO_GOOD, RF_NONE, -EPROTO },
	{ "two-fds", RO_GOOD, RF_TWO, -EPROTO },
	{ "not-a-character-device", RO_GOOD, RF_MEMFD, -EPROTO },
	{ "an-o-path-fd-of-the-device", RO_GOOD, RF_OPATH, -EPROTO },
	{ "a-read-only-fd-of-the-device", RO_GOOD, RF_RDONLY, -EPROTO },
	{ "fds-missing", "{" RO_DEV ",\"x\":\"%s\"}", RF_DEVNULL, -EPROTO },
	{ "fds-not-an-array", "{\"fds\":" RO_FD(",\"rdev\":%s") "," RO_DEV "}", RF_DEVNULL, -EPROTO },
	{ "fds-empty", "{\"fds\":[]," RO_DEV ",\"x\":\"%s\"}", RF_DEVNULL, -EPROTO },
	{ "fds-two-entries", "{\"fds\":[" RO_FD(",\"rdev\":%s") "," RO_FD("") "]," RO_DEV "}", RF_DEVNULL, -EPROTO },
	{ "fds-entry-not-an-object", "{\"fds\":[\"vdpa:vdpa0\"]," RO_DEV ",\"x\":\"%s\"}", RF_DEVNULL, -EPROTO },
	{ "name-missing", "{\"fds\":[{\"type\":\"vhost-vdpa\",\"rdev\":%s}]," RO_DEV "}", RF_DEVNULL, -EPROTO },
	{ "name-another-fd", "{\"fds\":[{\"name\":\"vdpa:vdpa1\",\"rdev\":%s}]," RO_DEV "}", RF_DEVNULL, -EPROTO },
	{ "name-not-a-string", "{\"fds\":[{\"name\":7,\"rdev\":%s}]," RO_DEV "}", RF_DEVNULL, -EPROTO },
	{ "rdev-missing", "{\"fds\":[" RO_FD("") "]," RO_DEV ",\"x\":\"%s\"}", RF_DEVNULL, -EPROTO },
	{ "rdev-another-device", "{\"fds\":[" RO_FD(",\"rdev\":1%s") "]," RO_DEV "}", RF_DEVNULL, -EPROTO },
	{ "rdev-a-string", "{\"fds\":[" RO_FD(",\"rdev\":\"%s\"") "]," RO_DEV "}", RF_DEVNULL, -EPROTO },
	{ "rdev-negative", "{\"fds\":[" RO_FD(",\"rdev\":-%s") "]," RO_DEV "}", RF_DEVNULL, -EPROTO },
	{ "device-missing", "{\"fds\":[" RO_FD(",\"rdev\":%s") "]}", RF_DEVNULL, -EPROTO },
	{ "device-not-an-object", "{\"fds\":[" RO_FD(",\"rdev\":%s") "],\"device\":\"vdpa0\"}", RF_DEVNULL, -EPROTO },
	{ "return-not-an-object", "[\"%s\"]", RF_DEVNULL, -EPROTO },
	{ "after-them-faithful-again", RO_GOOD, RF_DEVNULL, 0 },
};

/* answers request k (after capabilities) with reopen_cases[k]; exits at EOF */
static void fake_reopen_daemon(int lfd, unsigned long long rdev)
{
	int c = fake_accept(lfd);
	size_t k = 0;

	for (;;) {
		_cleanup_json_ json_object *req = NULL;
		json_object *id = NULL, *exec = NULL;
		char reply[1024], ret[768], num[32];
		int fds[2] = { -1, -1 };
		size_t nfds = 0;

		if (!fake_request(c, &req, &id, &exec))
			_exit(0);
		if (strcmp(json_object_get_string(exec), "capabilities") == 0 || k >= ELEMENTSOF(reopen_cases)) {
			snprintf(reply, sizeof(reply), "{\"return\":{},\"id\":%lld}", (long long)json_object_get_int64(id));
		} else {
			if (strcmp(json_object_get_string(exec), "device.reopen") != 0)
				_exit(5);
			const char *t = reopen_cases[k].ret, *at = strstr(t, "%s");

			if (!at)
				_exit(6);
			snprintf(num, sizeof(num), "%llu", rdev);
			snprintf(ret, sizeof(ret), "%.*s%s%s", (int)(at - t), t, num, at + 2);
			snprintf(reply, sizeof(reply), "{\"return\":%s,\"id\":%lld}", ret,
				 (long long)json_object_get_int64(id));
			switch (reopen_cases[k].fds) {
			case RF_TWO:
				fds[nfds++] = open("/dev/null", O_RDWR | O_CLOEXEC);
				/* fall through */
			case RF_DEVNULL:
				fds[nfds++] = open("/dev/null", O_RDWR | O_CLOEXEC);
				break;
			case RF_MEMFD:
				fds[nfds++] = memfd_create("not-a-device", MFD_CLOEXEC);
				break;
			case RF_OPATH: /* fstat() says character device, the rdev matches: no ioctl works on it */
				fds[nfds++] = open("/dev/null", O_PATH | O_CLOEXEC);
				break;
			case RF_RDONLY:
				fds[nfds++] = open("/dev/null", O_RDONLY | O_CLOEXEC);
				break;
			case RF_NONE:
				break;
			}
			k++;
		}
		if (vlu_msg_send(c, reply, strlen(reply), fds, nfds) < 0)
			_exit(4);
		for (size_t i = 0; i < nfds; i++)
			close(fds[i]);
	}
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	while (d && (e = readdir(d)))
		n += e->d_name[0] != '.';
	if (d)
		closedir(d);
	return n;
}

static void test_fake_reopen(const char *dir)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_close_ int lfd = -EBADF;
	struct vlu *v = NULL;
	struct stat null_st;
	int status = -1, r, fd = -77;
	json_object *info = NULL;
	pid_t pid = -1;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/fake-reopen.sock", dir);
	lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (!tap_check(lfd >= 0 && bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(lfd, 4) == 0 &&
			       stat("/dev/null", &null_st) == 0 && S_ISCHR(null_st.st_mode),
		       "reopen/listen", "%m"))
		return;
	pid = fork();
	if (pid == 0)
		fake_reopen_daemon(lfd, (unsigned long long)null_st.st_rdev);
	r = vlu_connect(sa.sun_path, 5000, &v);
	if (!tap_check(r == 0, "reopen/connect", "vlu_connect: %s", strerror(-r)))
		goto out;
	/* arguments: refused before anything is sent (the fake would take it as a case) */
	r = vlu_device_reopen(v, NULL, 0, &fd, &info);
	tap_check(r == -EINVAL && fd == -77 && !info, "reopen/no-name", "%s", strerror(-r));
	r = vlu_device_reopen(v, "vdpa:vdpa0", 0, NULL, &info);
	tap_check(r == -EINVAL && !info, "reopen/no-ret-fd", "%s", strerror(-r));
	r = vlu_device_reopen(NULL, "vdpa:vdpa0", 0, &fd, &info);
	tap_check(r == -EINVAL && fd == -77 && !info, "reopen/no-connection", "%s", strerror(-r));
	for (size_t i = 0; i < ELEMENTSOF(reopen_cases); i++) {
		int before = count_fds(), after;
		struct stat st;
		char name[96];

		fd = -77;
		info = NULL;
		r = vlu_device_reopen(v, "vdpa:vdpa0", 5000, &fd, &info);
		snprintf(name, sizeof(name), "reopen/%s", reopen_cases[i].name);
		if (reopen_cases[i].want == 0) {
			/* the fd it carried, the reply's return object */
			bool same = fd >= 0 && fstat(fd, &st) == 0 && st.st_rdev == null_st.st_rdev;
			json_object *rel = integ_get(info, "release_ms");

			tap_check(r == 0 && same && rel && json_object_get_double(rel) == 12.5 &&
					  !strcmp(integ_str(integ_get(info, "device.name")) ?: "", "vdpa0") &&
					  count_fds() == before + 1,
				  name, "r=%s fd %d %s", strerror(-r), fd, info ? json_object_to_json_string(info) : "-");
			if (fd >= 0)
				close(fd);
		} else {
			after = count_fds();
			/* refused, nothing written, every fd of the reply closed, no error reply recorded */
			tap_check(r == reopen_cases[i].want && fd == -77 && !info && after == before &&
					  vlu_last_error(v, NULL, NULL) == -ENODATA,
				  name, "r=%s fd %d, %d fds before, %d after", strerror(-r), fd, before, after);
		}
		json_object_put(info);
	}
	{
		/* the connection still works after every refusal */
		_cleanup_json_ json_object *ret = NULL;

		r = vlu_call(v, "status", NULL, NULL, 0, 5000, &ret, NULL, NULL);
		tap_check(r == 0 && ret, "reopen/connection-still-works", "%s", strerror(-r));
	}
out:
	vlu_close(v);
	if (pid > 0) {
		waitpid(pid, &status, 0);
		tap_check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "reopen/fake-daemon-exit", "status %d", status);
	}
}

/* ---- vluctl run uses vlu_device_reopen(): against a fake daemon whose reattached instance holds the device,
 * a malformed device.reopen reply stops the launch with the reason (the program never runs), a faithful one
 * places the fd it carried at the number named */
static void fake_run_daemon(int lfd, unsigned long long rdev)
{
	for (int conn = 0; conn < 2; conn++) {
		int c = fake_accept(lfd);

		for (;;) {
			_cleanup_json_ json_object *req = NULL;
			json_object *id = NULL, *exec = NULL;
			char reply[1024];
			const char *cmd;
			int fd = -1;

			if (!fake_request(c, &req, &id, &exec))
				break;
			cmd = json_object_get_string(exec);
			if (strcmp(cmd, "instance.register") == 0)
				snprintf(reply, sizeof(reply), "{\"return\":{\"name\":\"vmf\",\"pid\":1,\"uid\":0,"
					 "\"state\":\"attached\",\"reattached\":true,\"fds\":1},\"id\":%lld}",
					 (long long)json_object_get_int64(id));
			else if (strcmp(cmd, "fd.list") == 0)
				snprintf(reply, sizeof(reply), "{\"return\":{\"fds\":[{\"instance\":\"vmf\",\"name\":"
					 "\"vdpa:vdpa0\",\"type\":\"vhost-vdpa\",\"device\":\"vdpa0\"}]},\"id\":%lld}",
					 (long long)json_object_get_int64(id));
			else if (strcmp(cmd, "device.reopen") == 0) {
				/* the first launch: no "device"; the second: faithful */
				snprintf(reply, sizeof(reply), "{\"return\":{\"fds\":[{\"name\":\"vdpa:vdpa0\",\"rdev\":%llu}]%s},"
					 "\"id\":%lld}", rdev, conn ? ",\"device\":{\"name\":\"vdpa0\"},\"release_ms\":3.5" : "",
					 (long long)json_object_get_int64(id));
				fd = open("/dev/null", O_RDWR | O_CLOEXEC);
			} else
				snprintf(reply, sizeof(reply), "{\"return\":{},\"id\":%lld}",
					 (long long)json_object_get_int64(id));
			if (vlu_msg_send(c, reply, strlen(reply), &fd, fd >= 0 ? 1 : 0) < 0)
				_exit(4);
			if (fd >= 0)
				close(fd);
		}
		close(c);
	}
	_exit(0);
}

/* vluctl run vmf with its device vdpa0 at fd 3, the program writing what its fd 3 is to out, vluctl's stderr to
 * err: the wait status, and in buf what the file show holds (*ret_text NULL: show cannot be read) */
static int vluctl_run_fd3(const char *sock, const char *out, const char *err, const char *show, char *buf,
			  size_t size, const char **ret_text)
{
	char cmd[2048];
	size_t len;
	FILE *f;
	int ws;

	snprintf(cmd, sizeof(cmd),
		 "'%s' --socket '%s' run vmf --device vdpa0=3 -- /bin/sh -c 'readlink /proc/self/fd/3 >%s' 2>'%s'",
		 integ_prog("vluctl"), sock, out, err);
	ws = system(cmd);
	*ret_text = NULL;
	f = fopen(show, "re");
	if (f) {
		len = fread(buf, 1, size - 1, f);
		buf[len] = 0;
		fclose(f);
		*ret_text = buf;
	}
	return ws;
}

static void test_vluctl_run_reopen(const char *dir)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_close_ int lfd = -EBADF;
	struct stat null_st;
	char buf[2048], out[600], err[600];
	const char *text;
	int status = -1, ws;
	pid_t pid;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/fake-run.sock", dir);
	snprintf(out, sizeof(out), "%s/run-fd3", dir);
	snprintf(err, sizeof(err), "%s/run-stderr", dir);
	lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (!tap_check(lfd >= 0 && bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(lfd, 4) == 0 &&
			       stat("/dev/null", &null_st) == 0,
		       "vluctl-run-reopen/listen", "%m"))
		return;
	pid = fork();
	if (pid == 0)
		fake_run_daemon(lfd, (unsigned long long)null_st.st_rdev);
	/* 1: the reply has no "device": refused, the program never runs (vluctl's stderr says why) */
	ws = vluctl_run_fd3(sa.sun_path, out, err, err, buf, sizeof(buf), &text);
	tap_check(WIFEXITED(ws) && WEXITSTATUS(ws) == 1 && text &&
			  strstr(text, "vluctl: run: device.reopen vdpa0: malformed reply") && access(out, F_OK) != 0,
		  "vluctl-run-reopen/malformed-reply-refused", "exit 0x%x, %s stderr: %s", ws,
		  access(out, F_OK) == 0 ? "the program ran;" : "", text ? text : "-");
	/* 2: faithful: the program has the fd it carried at 3 */
	ws = vluctl_run_fd3(sa.sun_path, out, err, out, buf, sizeof(buf), &text);
	tap_check(WIFEXITED(ws) && WEXITSTATUS(ws) == 0 && text && strcmp(text, "/dev/null\n") == 0,
		  "vluctl-run-reopen/faithful-reply-fd-placed", "exit 0x%x, fd 3: %s", ws, text ? text : "-");
	waitpid(pid, &status, 0);
	tap_check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "vluctl-run-reopen/fake-daemon-exit", "status %d",
		  status);
}

static void test_real_daemon(void)
{
	struct vlu *v = NULL;
	int r;

	r = vlu_connect(D.sock, 5000, &v);
	if (!tap_check(r == 0, "real/connect", "vlu_connect: %s", strerror(-r)))
		return;
	static const char *const bad_names[] = { "\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "vm\xe2\x82" };
	for (size_t i = 0; i < ELEMENTSOF(bad_names); i++) {
		_cleanup_json_ json_object *args = json_object_new_object();
		_cleanup_json_ json_object *ret = NULL, *st = NULL;
		char name[64];

		json_object_object_add(args, "instance", json_object_new_string(bad_names[i]));
		snprintf(name, sizeof(name), "real/not-sent/invalid-utf8-%zu", i);
		r = vlu_call(v, "fd.list", args, NULL, 0, 5000, &ret, NULL, NULL);
		tap_check(r == -EINVAL && vlu_last_error(v, NULL, NULL) == -ENODATA, name,
			  "want -EINVAL without an error reply, got %s", strerror(-r));
		r = vlu_call(v, "status", NULL, NULL, 0, 5000, &st, NULL, NULL);
		tap_check(r == 0 && st, name, "status afterwards: %s", strerror(-r));
	}
	{
		_cleanup_json_ json_object *args = json_object_new_object(), *ret = NULL;

		json_object_object_add(args, "instance", json_object_new_string_len("vm\0x", 4));
		r = vlu_call(v, "fd.list", args, NULL, 0, 5000, &ret, NULL, NULL);
		tap_check(r == -EINVAL, "real/not-sent/nul", "%s", strerror(-r));
	}
	{
		_cleanup_json_ json_object *args = json_object_new_object(), *ret = NULL;

		json_object_object_add(args, "x", json_object_new_double(INFINITY));
		r = vlu_call(v, "fd.list", args, NULL, 0, 5000, &ret, NULL, NULL);
		tap_check(r == -EINVAL, "real/not-sent/infinity", "%s", strerror(-r));
	}
	{
		_cleanup_json_ json_object *ret = NULL;

		r = vlu_call(v, "sta\xc0\xb4us", NULL, NULL, 0, 5000, &ret, NULL, NULL);
		tap_check(r == -EINVAL, "real/not-sent/command", "%s", strerror(-r));
	}
	{
		/* valid non-ASCII travels: the daemon's name rule answers (an error reply, not -EPROTO) */
		_cleanup_json_ json_object *args = json_object_new_object(), *ret = NULL;
		const char *cls = NULL, *desc = NULL;

		json_object_object_add(args, "instance", json_object_new_string("vm-\xf0\x9f\x98\x80"));
		r = vlu_call(v, "fd.list", args, NULL, 0, 5000, &ret, NULL, NULL);
		tap_check(r == -EINVAL && vlu_last_error(v, &cls, &desc) == 0 && strcmp(cls, "InvalidArgument") == 0 &&
				  strstr(desc, "not a valid name"),
			  "real/utf8-4-sent", "%s %s", strerror(-r), desc ? desc : "-");
	}
	vlu_close(v);
}

int main(void)
{
	_cleanup_free_ char *dir = integ_mkdtemp("lib-strict");
	int r;

	tap_suite("integ-lib-strict");
	signal(SIGPIPE, SIG_IGN);
	if (!dir) {
		tap_check(false, "setup", "temporary directory: %m");
		return 1;
	}
	test_fake_daemon(dir);
	test_fake_reopen(dir);
	test_vluctl_run_reopen(dir);
	r = integ_daemon_start(&D, dir, NULL);
	if (tap_check(r == 0, "start-ready", "vlud did not become ready (%s)", strerror(-r)))
		test_real_daemon();
	tap_check(integ_daemon_alive(&D), "daemon-alive", "vlud exited");
	if (tap_failures())
		integ_daemon_dump_log(&D);
	if (D.pid > 0)
		integ_daemon_stop(&D, SIGTERM, 5000);
	integ_rmrf(dir);
	return tap_exit_status();
}
