/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-devkinds.c - device.open of the device kinds besides vhost-vdpa (docs/IOMMUFD.md): /dev/iommu and
 * VFIO device cdevs, under the same policy as vhost-vdpa nodes, and what the host can prove of it (it has
 * no /dev/iommu and no VFIO device: the rig's iommufd-vlud scenario opens real ones).  Against the built
 * vlud:
 *   - a listed /dev/iommu or /dev/vfio/devices/vfio0 that does not exist: NotFound, no fd;
 *   - the kind is checked on the opened fd, not on the name: a node called "iommu" that is /dev/null's
 *     device number, and a node with the misc major and the minor of another misc device (not "iommu" in
 *     /proc/misc), are DeviceError naming the kinds vlud accepts, no fd, nothing held;
 *   - a VFIO-looking path not in the policy: PermissionDenied;
 *   - fd.store refuses the names device.open reserves for these kinds ("iommufd:", "vfio:");
 *   - vmm.mappings' "ioas" names only fds of the right kind the instance holds (a stored memfd is not an
 *     iommufd: NotFound), and unknown keys are refused (InvalidArgument); a refused declaration leaves
 *     the previous table (update.status).
 * The nodes are made with mknod (needs root; otherwise skipped with the reason).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "integ.h"
#include "vlu-proto.h"

static struct integ_daemon D;

static bool class_is(json_object *rep, const char *cls)
{
	const char *c = integ_error_class(rep);
	return c && strcmp(c, cls) == 0;
}

static const char *rep_str(json_object *rep)
{
	return rep ? json_object_to_json_string(rep) : "(no reply)";
}

/* the minor of a misc device other than "iommu" that is safe to open and close (no side effect) */
static int other_misc_minor(const char **ret_name)
{
	static const char *const safe[] = { "tun", "loop-control", "vga_arbiter", "userfaultfd" };
	char line[128], nm[64];
	FILE *f = fopen("/proc/misc", "re");
	int m, found = -1;

	if (!f)
		return -1;
	while (found < 0 && fgets(line, sizeof(line), f))
		if (sscanf(line, "%d %63s", &m, nm) == 2)
			for (size_t i = 0; i < sizeof(safe) / sizeof(safe[0]); i++)
				if (strcmp(nm, safe[i]) == 0) {
					found = m;
					*ret_name = safe[i];
				}
	fclose(f);
	return found;
}

/* device.open of dev: the reply's error class must be cls, no fd, and the desc must contain want (if
 * given) */
static void open_refused(int c, const char *dev, const char *cls, const char *want, const char *name)
{
	_cleanup_json_ json_object *rep = NULL;
	char args[512];
	int rfd[2];
	size_t nr = 0;
	int r;

	snprintf(args, sizeof(args), "{\"device\":\"%s\"}", dev);
	r = integ_call(c, "device.open", args, NULL, 0, &rep, rfd, 2, &nr);
	tap_check(r == 0 && class_is(rep, cls) && nr == 0 &&
			  (!want || (integ_error_desc(rep) && strstr(integ_error_desc(rep), want))),
		  name, "device.open %s: expected %s%s%s, got r=%d %s nfds=%zu", dev, cls, want ? " with " : "",
		  want ? want : "", r, rep_str(rep), nr);
	if (integ_error_desc(rep))
		tap_diag("device.open %s: %s: %s", dev, integ_error_class(rep), integ_error_desc(rep));
	for (size_t i = 0; i < nr; i++)
		close(rfd[i]);
}

int main(void)
{
	_cleanup_free_ char *cfg = NULL, *extra = NULL, *fake_iommu = NULL, *fake_misc = NULL, *unlisted = NULL;
	_cleanup_close_ int c = -EBADF;
	struct integ_daemon_opts o = {};
	const char *misc_name = NULL;
	char *dir;
	int r, misc_minor;

	tap_suite("devkinds");
	if (geteuid() != 0) {
		tap_skip("all", "needs root (mknod of the test's device nodes)");
		return tap_exit_status();
	}
	dir = integ_mkdtemp("devkinds");
	if (!dir)
		return 1;
	misc_minor = other_misc_minor(&misc_name);
	if (asprintf(&fake_iommu, "%s/iommu", dir) < 0 || asprintf(&fake_misc, "%s/misc-not-iommu", dir) < 0 ||
	    asprintf(&unlisted, "%s/vfio-unlisted", dir) < 0)
		return 1;
	/* /dev/null's device number under the name "iommu" */
	r = mknod(fake_iommu, S_IFCHR | 0600, makedev(1, 3));
	if (!tap_check(r == 0, "mknod", "mknod %s: %m", fake_iommu))
		return tap_exit_status();
	if (misc_minor >= 0 && mknod(fake_misc, S_IFCHR | 0600, makedev(10, misc_minor)) < 0)
		misc_minor = -1;
	if (asprintf(&extra,
		     "{ \"uids\": [0], \"devices\": [\"/dev/iommu\", \"/dev/vfio/devices/vfio0\", \"%s\", \"%s\"],"
		     " \"fd_types\": [\"memfd\"] }",
		     fake_iommu, fake_misc) < 0)
		return 1;
	cfg = integ_config(dir, extra, NULL);
	o.config_json = cfg;
	r = integ_daemon_start(&D, dir, &o);
	if (r >= 0)
		r = integ_daemon_wait_ready(&D, 10000);
	if (!tap_check(r >= 0, "daemon-ready", "%s", strerror(-r))) {
		integ_daemon_dump_log(&D);
		return tap_exit_status();
	}
	c = integ_open_client(D.sock, NULL);
	if (!tap_check(c >= 0, "connect", "%s", strerror(-c)))
		goto out;
	{
		_cleanup_json_ json_object *rep = NULL;

		r = integ_call(c, "instance.register", "{\"name\":\"vm1\"}", NULL, 0, &rep, NULL, 0, NULL);
		if (!tap_check(r == 0 && integ_return(rep), "register", "%s", rep_str(rep)))
			goto out;
	}

	if (access("/dev/iommu", F_OK) == 0)
		tap_skip("iommu-absent-not-found", "this host has /dev/iommu");
	else
		open_refused(c, "/dev/iommu", "NotFound", "/dev/iommu", "iommu-absent-not-found");
	if (access("/dev/vfio/devices/vfio0", F_OK) == 0)
		tap_skip("vfio-absent-not-found", "this host has /dev/vfio/devices/vfio0");
	else
		open_refused(c, "/dev/vfio/devices/vfio0", "NotFound", NULL, "vfio-absent-not-found");
	open_refused(c, "/dev/vfio/devices/vfio1", "PermissionDenied", "not allowed", "vfio-unlisted-refused");
	/* the kind comes from the fd's device number, whatever the node is called */
	open_refused(c, fake_iommu, "DeviceError", "iommufd", "named-iommu-but-dev-null");
	if (misc_minor >= 0) {
		char n[64];

		snprintf(n, sizeof(n), "misc-%s-not-iommu", misc_name);
		open_refused(c, fake_misc, "DeviceError", "iommufd", n);
	} else
		tap_skip("misc-not-iommu", "no harmless misc device (tun, loop-control, ...) in /proc/misc");
	{
		_cleanup_json_ json_object *rep = NULL;

		r = integ_call(c, "fd.list", NULL, NULL, 0, &rep, NULL, 0, NULL);
		tap_check(r == 0 && json_object_is_type(integ_get(rep, "return.fds"), json_type_array) &&
				  json_object_array_length(integ_get(rep, "return.fds")) == 0,
			  "nothing-held-after-refusals", "%s", rep_str(rep));
	}
	/* fd.store: the names device.open gives these kinds are reserved */
	{
		static const char *const names[] = { "iommufd:iommu", "vfio:vfio0", "vdpa:x" };

		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
			_cleanup_json_ json_object *rep = NULL;
			_cleanup_close_ int m = memfd_create("devkinds", MFD_CLOEXEC);
			char args[128], n[64];

			snprintf(args, sizeof(args), "{\"names\":[\"%s\"]}", names[i]);
			snprintf(n, sizeof(n), "fd.store-reserved-%.*s", (int)strcspn(names[i], ":"), names[i]);
			r = integ_call(c, "fd.store", args, &m, 1, &rep, NULL, 0, NULL);
			tap_check(r == 0 && class_is(rep, "InvalidArgument") && integ_error_desc(rep) &&
					  strstr(integ_error_desc(rep), "reserved"),
				  n, "fd.store %s: %s", names[i], rep_str(rep));
		}
	}
	/* vmm.mappings "ioas": a memfd is no iommufd, nothing held is; unknown keys; the table unchanged */
	{
		_cleanup_close_ int m = memfd_create("devkinds-ram", MFD_CLOEXEC);
		static const struct {
			const char *args, *cls, *words, *name;
		} cases[] = {
			{ "{\"mappings\":[],\"ioas\":[{\"iommufd\":\"ram\",\"ioas_id\":1,\"mappings\":[]}]}", "NotFound",
			  "no iommufd fd 'ram'", "ioas-memfd-is-no-iommufd" },
			{ "{\"mappings\":[],\"ioas\":[{\"iommufd\":\"iommufd:iommu\",\"ioas_id\":1,\"mappings\":[]}]}",
			  "NotFound", "no iommufd fd 'iommufd:iommu'", "ioas-iommufd-not-held" },
			{ "{\"mappings\":[],\"ioas\":[{\"iommufd\":\"ram\",\"ioas_id\":1,\"mappings\":[],\"perm\":3}]}",
			  "InvalidArgument", "unknown key 'perm'", "ioas-unknown-key" },
			{ "{\"mappings\":[],\"ioas\":[{\"iommufd\":\"ram\",\"ioas_id\":-1,\"mappings\":[]}]}",
			  "InvalidArgument", "ioas_id", "ioas-bad-id" },
		};
		_cleanup_json_ json_object *st = NULL;

		r = m >= 0 && ftruncate(m, 1 << 20) == 0 ? integ_call(c, "fd.store", "{\"names\":[\"ram\"]}", &m, 1, &st, NULL, 0, NULL) : -1;
		if (tap_check(r == 0 && integ_return(st), "store-ram", "%s", rep_str(st))) {
			for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
				_cleanup_json_ json_object *rep = NULL;

				r = integ_call(c, "vmm.mappings", cases[i].args, NULL, 0, &rep, NULL, 0, NULL);
				tap_check(r == 0 && class_is(rep, cases[i].cls) && integ_error_desc(rep) &&
						  strstr(integ_error_desc(rep), cases[i].words),
					  cases[i].name, "expected %s with '%s', got %s", cases[i].cls, cases[i].words,
					  rep_str(rep));
			}
			json_object_put(TAKE_PTR(st));
			r = integ_call(c, "update.status", "{\"instance\":\"vm1\"}", NULL, 0, &st, NULL, 0, NULL);
			tap_check(r == 0 && integ_return(st) && !integ_get(st, "return.ioas") && !integ_get(st, "return.mappings"),
				  "refused-declarations-change-nothing", "%s", rep_str(st));
		}
	}
out:
	r = integ_daemon_stop(&D, SIGTERM, 5000);
	tap_check(r >= 0 && WIFEXITED(r) && WEXITSTATUS(r) == 0, "daemon-exit", "status %d", r);
	if (tap_failures())
		integ_daemon_dump_log(&D);
	integ_rmrf(dir);
	free(dir);
	return tap_exit_status();
}
