/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vluctl - operator CLI of vlud.  Talks to the daemon through libvlu.  Its
 * own commands are one table (verbs[], at the end: name, argument counts,
 * function, synopsis, help) that dispatch, usage errors and --help all read;
 * the protocol command list of `help` comes from the protocol's table.
 *
 * Exit codes: 0 ok, 1 error reply from the daemon (or another failure),
 * 2 usage, 3 cannot connect / connection lost, 4 timeout.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "basics.h"
#include "vlu-proto.h"
#include "vlu.h"

enum {
	EXIT_OK = 0,
	EXIT_ERROR = 1,
	EXIT_USAGE = 2,
	EXIT_CONNECT = 3,
	EXIT_TIMEOUT = 4,
};

static const char *arg_socket;
static bool arg_json;
static int arg_timeout = VLU_DEFAULT_TIMEOUT_MS;
static bool arg_timeout_given; /* --timeout was on the command line (update start: overrides the derived wait) */

/* the synopsis of a verb (the table at the end) on stderr; EXIT_USAGE */
static int verb_usage(const char *group, const char *name);

static void perm_string(unsigned perm, char *buf, size_t len)
{
	buf[0] = '\0';
	if (perm & VLU_PERM_PRENEG)
		strncat(buf, "pre-negotiation,", len - strlen(buf) - 1);
	if (perm & VLU_PERM_ANY)
		strncat(buf, "any,", len - strlen(buf) - 1);
	if (perm & VLU_PERM_VMM)
		strncat(buf, (perm & VLU_PERM_INSTANCE) ? "vmm+instance," : "vmm,", len - strlen(buf) - 1);
	if (perm & VLU_PERM_OPERATOR)
		strncat(buf, "operator,", len - strlen(buf) - 1);
	if (buf[0])
		buf[strlen(buf) - 1] = '\0';
}

static void help_commands(void)
{
	printf("\nProtocol commands (for `vluctl call`):\n");
	for (size_t i = 0; i < _VLU_CMD_MAX; i++) {
		const struct vlu_command *c = &vlu_commands[i];
		char perm[96];

		perm_string(c->perm, perm, sizeof(perm));
		printf("  %-18s %s\n", c->name, c->summary);
		printf("  %-18s   permission: %s%s%s\n", "", perm,
		       c->fds_in == VLU_FDS_PER_NAME ? "; carries one fd per name" : "",
		       c->fds_out ? "; returns fds" : "");
		for (size_t k = 0; k < c->n_args; k++) {
			const struct vlu_arg *a = &c->args[k];
			char range[64] = "";

			if (a->type != VLU_ARG_BOOL && a->type != VLU_ARG_OBJECT)
				snprintf(range, sizeof(range), "(%" PRId64 "..%" PRId64 ")", a->min, a->max);
			printf("  %-18s   %s%s: %s%s  %s\n", "", a->name, a->required ? "" : "?",
			       vlu_arg_type_name(a->type), range, a->help);
		}
	}
}

/* ---------------------------------------------------------------- output */

static void print_value(FILE *f, json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_null:
		fputs("-", f);
		break;
	case json_type_string:
		fputs(json_object_get_string(v), f);
		break;
	case json_type_array: {
		/* arrays of scalars as a comma list */
		size_t n = json_object_array_length(v);
		bool scalars = true;
		for (size_t i = 0; i < n; i++) {
			json_type t = json_object_get_type(json_object_array_get_idx(v, i));
			scalars &= t != json_type_object && t != json_type_array;
		}
		if (!scalars) {
			fputs(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN), f);
			break;
		}
		if (n == 0)
			fputs("-", f);
		for (size_t i = 0; i < n; i++) {
			if (i)
				fputs(",", f);
			print_value(f, json_object_array_get_idx(v, i));
		}
		break;
	}
	default:
		fputs(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN), f);
		break;
	}
}

static char *value_string(json_object *v)
{
	char *s = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&s, &len);

	if (!f)
		return NULL;
	print_value(f, v);
	fclose(f);
	return s;
}

/* "key: value" lines, nested objects flattened as a.b */
static void print_kv(json_object *o, const char *prefix)
{
	json_object_object_foreach(o, key, val) {
		char name[256];

		snprintf(name, sizeof(name), "%s%s%s", prefix, *prefix ? "." : "", key);
		if (json_object_is_type(val, json_type_object) && json_object_object_length(val) > 0) {
			print_kv(val, name);
			continue;
		}
		printf("%s: ", name);
		print_value(stdout, val);
		putchar('\n');
	}
}

/* An aligned table of an array of objects; columns = keys in order of first appearance, preferred first. */
static void print_table(json_object *arr, const char *const *preferred)
{
	size_t n = json_object_array_length(arr);
	const char *cols[64];
	size_t ncols = 0, width[64];

	for (size_t i = 0; preferred && preferred[i] && ncols < ELEMENTSOF(cols); i++)
		for (size_t r = 0; r < n; r++)
			if (json_object_object_get_ex(json_object_array_get_idx(arr, r), preferred[i], NULL)) {
				cols[ncols++] = preferred[i];
				break;
			}
	for (size_t r = 0; r < n; r++) {
		json_object *row = json_object_array_get_idx(arr, r);
		if (!json_object_is_type(row, json_type_object))
			continue;
		json_object_object_foreach(row, key, val) {
			bool seen = false;
			(void)val;
			for (size_t c = 0; c < ncols; c++)
				seen |= strcmp(cols[c], key) == 0;
			if (!seen && ncols < ELEMENTSOF(cols))
				cols[ncols++] = key;
		}
	}
	if (n == 0 || ncols == 0) {
		printf("(none)\n");
		return;
	}

	char **cells = calloc(n * ncols, sizeof(char *));
	if (!cells)
		return;
	for (size_t c = 0; c < ncols; c++)
		width[c] = strlen(cols[c]);
	for (size_t r = 0; r < n; r++)
		for (size_t c = 0; c < ncols; c++) {
			json_object *v = NULL;
			json_object *row = json_object_array_get_idx(arr, r);
			if (json_object_is_type(row, json_type_object) && json_object_object_get_ex(row, cols[c], &v))
				cells[r * ncols + c] = value_string(v);
			else
				cells[r * ncols + c] = strdup("-");
			if (cells[r * ncols + c] && strlen(cells[r * ncols + c]) > width[c])
				width[c] = strlen(cells[r * ncols + c]);
		}
	for (size_t c = 0; c < ncols; c++) {
		for (const char *p = cols[c]; *p; p++)
			putchar(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p);
		if (c + 1 < ncols)
			printf("%*s", (int)(width[c] - strlen(cols[c]) + 2), "");
	}
	putchar('\n');
	for (size_t r = 0; r < n; r++) {
		for (size_t c = 0; c < ncols; c++) {
			const char *s = cells[r * ncols + c] ? cells[r * ncols + c] : "?";
			if (c + 1 < ncols)
				printf("%-*s  ", (int)width[c], s);
			else
				printf("%s", s);
		}
		putchar('\n');
	}
	for (size_t i = 0; i < n * ncols; i++)
		free(cells[i]);
	free(cells);
}

static void print_json(json_object *j)
{
	printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
}

/* Print a list reply: the array under `key` as a table, other members as key: value lines. */
static void print_list(json_object *ret, const char *key, const char *const *preferred)
{
	json_object *arr = NULL;

	if (!json_object_object_get_ex(ret, key, &arr) || !json_object_is_type(arr, json_type_array)) {
		print_kv(ret, "");
		return;
	}
	print_table(arr, preferred);
	json_object_object_foreach(ret, k, v) {
		if (strcmp(k, key) == 0)
			continue;
		printf("%s: ", k);
		print_value(stdout, v);
		putchar('\n');
	}
}

/* ---------------------------------------------------------------- calls */

static int exit_of(int r)
{
	switch (r) {
	case -ETIMEDOUT:
		return EXIT_TIMEOUT;
	case -ECONNRESET:
	case -ECONNREFUSED:
	case -ENOENT:
	case -EACCES:
	case -ENOTCONN:
	case -EPROTONOSUPPORT:
		return EXIT_CONNECT;
	default:
		return EXIT_ERROR;
	}
}

static int report_failure(struct vlu *v, const char *what, int r)
{
	const char *cls, *desc;

	if (v && vlu_last_error(v, &cls, &desc) >= 0) {
		if (arg_json) {
			_cleanup_json_ json_object *e = json_object_new_object(), *inner = json_object_new_object();
			json_object_object_add(inner, "class", json_object_new_string(cls));
			json_object_object_add(inner, "desc", json_object_new_string(desc));
			json_object_object_add(e, "error", TAKE_PTR(inner));
			print_json(e);
		}
		fprintf(stderr, "vluctl: %s: %s: %s\n", what, cls, desc);
		return EXIT_ERROR;
	}
	fprintf(stderr, "vluctl: %s: %s\n", what, strerror(-r));
	if (r == -ETIMEDOUT)
		return EXIT_TIMEOUT;
	if (r == -ECONNRESET)
		return EXIT_CONNECT;
	return EXIT_ERROR;
}

static int do_connect(struct vlu **ret)
{
	int r = vlu_connect(arg_socket, arg_timeout, ret);

	if (r < 0) {
		const char *path = arg_socket ? arg_socket : getenv("VLUD_SOCKET");
		if (!path || !*path)
			path = VLU_DEFAULT_SOCKET;
		const char *why = r == -E2BIG		? "the daemon refused: too many connections"
				  : r == -EPROTONOSUPPORT ? "the daemon speaks another protocol version"
				  : r == -EPROTO	  ? "not a vlud socket"
							  : strerror(-r);
		fprintf(stderr, "vluctl: cannot connect to %s: %s\n", path, why);
		return r == -ETIMEDOUT ? EXIT_TIMEOUT : EXIT_CONNECT;
	}
	vlu_set_timeout(*ret, arg_timeout);
	return EXIT_OK;
}

/* One call, printed as a table (list_key), key: value lines (list_key NULL), or raw JSON. */
static int simple(const char *command, json_object *args, const char *list_key, const char *const *preferred)
{
	struct vlu *v = NULL;
	_cleanup_json_ json_object *ret = NULL;
	int r, ex;

	ex = do_connect(&v);
	if (ex != EXIT_OK)
		return ex;
	r = vlu_call(v, command, args, NULL, 0, arg_timeout, &ret, NULL, NULL);
	if (r < 0) {
		ex = report_failure(v, command, r);
		vlu_close(v);
		return ex;
	}
	if (arg_json)
		print_json(ret);
	else if (list_key)
		print_list(ret, list_key, preferred);
	else
		print_kv(ret, "");
	vlu_close(v);
	return EXIT_OK;
}

static int verb_call(int argc, char **argv)
{
	_cleanup_json_ json_object *args = NULL, *ret = NULL;
	_cleanup_free_ int *fds = NULL;
	struct vlu *v = NULL;
	size_t nfds = 0;
	int r, ex;

	if (argc == 3) {
		r = vlu_json_parse(argv[2], strlen(argv[2]), VLU_DEFAULT_MAX_DEPTH, &args);
		if (r < 0) {
			fprintf(stderr, "vluctl: JSON-ARGS must be one JSON object: %s\n", argv[2]);
			return EXIT_USAGE;
		}
	}
	ex = do_connect(&v);
	if (ex != EXIT_OK)
		return ex;
	r = vlu_call(v, argv[1], args, NULL, 0, arg_timeout, &ret, &fds, &nfds);
	if (r < 0) {
		ex = report_failure(v, argv[1], r);
		vlu_close(v);
		return ex;
	}
	/* fds a reply carries are of no use to a CLI; the return lists what they were */
	close_many(fds, nfds);
	print_json(ret);
	vlu_close(v);
	return EXIT_OK;
}

static int parse_timeout(const char *s)
{
	char *end;
	long t;

	errno = 0;
	t = strtol(s, &end, 10);
	if (errno || *end || !*s || t > INT_MAX || t < INT_MIN) {
		fprintf(stderr, "vluctl: --timeout wants milliseconds\n");
		return -EINVAL;
	}
	/* 0 would mean "library default" to libvlu; on the CLI it means "do not wait" */
	arg_timeout = t == 0 ? 1 : (int)t;
	arg_timeout_given = true;
	return 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Deliver v's events to its callback until done(ud) holds, the connection fails or the deadline
 * (CLOCK_MONOTONIC ms; < 0: none) passes.  0 when done, -ETIME at the deadline, else a negative errno
 * (vlu_process()'s, or poll()'s). */
static int pump_events(struct vlu *v, int64_t deadline, bool (*done)(void *ud), void *ud)
{
	for (;;) {
		struct pollfd p = { .fd = vlu_get_fd(v), .events = POLLIN };
		int t = -1;
		int r = vlu_process(v);

		if (done(ud))
			return 0;
		if (r < 0)
			return r;
		if (deadline >= 0) {
			int64_t left = deadline - now_ms();

			if (left <= 0)
				return -ETIME;
			t = left > INT_MAX ? INT_MAX : (int)left;
		}
		if (poll(&p, 1, t) < 0 && errno != EINTR)
			return -errno;
	}
}

struct events_state {
	unsigned seen;
	unsigned long count; /* stop after this many (0: follow) */
};

static bool events_done(void *ud)
{
	const struct events_state *st = ud;

	return st->count > 0 && st->seen >= st->count;
}

static void on_event(struct vlu *v, const char *name, json_object *event, void *userdata)
{
	struct events_state *st = userdata;
	json_object *ts = NULL, *data = NULL;

	st->seen++;
	if (arg_json) {
		print_json(event);
	} else {
		int64_t s = 0, us = 0;
		char when[64] = "?";
		struct tm tm;

		if (json_object_object_get_ex(event, "timestamp", &ts)) {
			s = json_object_get_int64(json_object_object_get(ts, "seconds"));
			us = json_object_get_int64(json_object_object_get(ts, "microseconds"));
			time_t t = (time_t)s;
			if (gmtime_r(&t, &tm))
				strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
		}
		printf("%s.%06" PRId64 "Z %s", when, us, name ? name : "?");
		if (json_object_object_get_ex(event, "data", &data) && json_object_is_type(data, json_type_object)) {
			json_object_object_foreach(data, key, val) {
				printf(" %s=", key);
				print_value(stdout, val);
			}
		}
		putchar('\n');
	}
	fflush(stdout);
}

static int verb_events(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "follow", no_argument, NULL, 'f' },
		{ "count", required_argument, NULL, 'n' },
		{ "instance", required_argument, NULL, 'i' },
		{ "event", required_argument, NULL, 'e' },
		/* the global options are also accepted here, for convenience */
		{ "timeout", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{},
	};
	struct events_state st = { 0 };
	const char *instance = NULL, *names[VLU_EVENTS_FILTER_MAX];
	size_t nnames = 0;
	bool follow = false;
	long count = 1;
	struct vlu *v = NULL;
	int c, r, ex;
	int64_t deadline = -1;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+fn:i:e:t:j", opts, NULL)) >= 0) {
		switch (c) {
		case 't':
			if (parse_timeout(optarg) < 0)
				return EXIT_USAGE;
			break;
		case 'j':
			arg_json = true;
			break;
		case 'f':
			follow = true;
			break;
		case 'n': {
			char *end;
			errno = 0;
			count = strtol(optarg, &end, 10);
			if (errno || *end || count < 1) {
				fprintf(stderr, "vluctl: --count wants a positive number\n");
				return EXIT_USAGE;
			}
			break;
		}
		case 'i':
			instance = optarg;
			break;
		case 'e':
			/* the names are the daemon's to check (an unknown one is refused, naming it) */
			if (nnames == ELEMENTSOF(names)) {
				fprintf(stderr, "vluctl: events: at most %d --event names\n", VLU_EVENTS_FILTER_MAX);
				return EXIT_USAGE;
			}
			names[nnames++] = optarg;
			break;
		default:
			return EXIT_USAGE;
		}
	}
	if (optind != argc)
		return verb_usage(NULL, "events");

	ex = do_connect(&v);
	if (ex != EXIT_OK)
		return ex;
	r = nnames ? vlu_subscribe_events(v, instance, names, nnames) : vlu_subscribe(v, instance);
	if (r < 0) {
		ex = report_failure(v, "events.subscribe", r);
		vlu_close(v);
		return ex;
	}
	vlu_set_event_callback(v, on_event, &st);
	/* without --follow the timeout bounds the wait for the events */
	if (!follow && arg_timeout >= 0)
		deadline = now_ms() + arg_timeout;
	st.count = follow ? 0 : (unsigned long)count;
	r = pump_events(v, deadline, events_done, &st);
	if (r == -ETIME) {
		fprintf(stderr, "vluctl: events: %u of %ld events before the timeout\n", st.seen, count);
		vlu_close(v);
		return EXIT_TIMEOUT;
	}
	if (r < 0) {
		vlu_close(v);
		if (follow && r == -ECONNRESET)
			return EXIT_OK; /* the daemon went away: the end of the stream */
		fprintf(stderr, "vluctl: events: %s\n", strerror(-r));
		return exit_of(r);
	}
	vlu_close(v);
	return EXIT_OK;
}

/* ---------------------------------------------------------------- update */

/* Wait of `update start` for the verdict when the daemon does not report its phase deadlines. */
#define UPDATE_DEFAULT_WAIT_MS 300000
/* Added to the sum of the daemon's deadlines: the rollback and the verdict after the last one. */
#define UPDATE_WAIT_MARGIN_MS 10000

static json_object *jget(json_object *o, const char *key)
{
	json_object *v = NULL;

	if (!o || !json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, key, &v))
		return NULL;
	return v;
}

static const char *jstr(json_object *o, const char *key)
{
	json_object *v = jget(o, key);

	return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* How long `update start` waits for the verdict: the daemon's phase deadlines (status:
 * timeouts.update) of a whole update, once more for a restart of the previous binary (exec mode),
 * with the claim's and the restore's commit_ms each, plus a margin.  The daemon ends every update
 * by these deadlines, so the wait only runs out when something is wrong. */
static int update_wait_ms(struct vlu *v)
{
	static const char *const keys[] = { "suspend_ms", "save_ms", "exec_ms", "claim_ms", "commit_ms" };
	_cleanup_json_ json_object *st = NULL;
	json_object *u;
	int64_t t[ELEMENTSOF(keys)], total;

	if (vlu_call(v, "status", NULL, NULL, 0, arg_timeout, &st, NULL, NULL) < 0)
		return UPDATE_DEFAULT_WAIT_MS;
	u = jget(jget(st, "timeouts"), "update");
	for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
		json_object *x = jget(u, keys[i]);

		if (!x || !json_object_is_type(x, json_type_int))
			return UPDATE_DEFAULT_WAIT_MS; /* an older daemon: no deadlines in its status */
		t[i] = json_object_get_int64(x);
	}
	total = t[0] + t[1] + 2 * (t[2] + t[3] + 2 * t[4]) + UPDATE_WAIT_MARGIN_MS;
	return total > INT_MAX ? INT_MAX : (int)total;
}

static char *ms_string(json_object *v)
{
	char *s = NULL;

	if (v && (json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int))) {
		if (asprintf(&s, "%.3f ms", json_object_get_double(v)) < 0)
			s = NULL;
		return s;
	}
	return value_string(v);
}

static void print_row(const char *label, const char *value)
{
	printf("%-14s %s\n", label, value && *value ? value : "-");
}

static void print_row_json(const char *label, json_object *v)
{
	_cleanup_free_ char *s = value_string(v);

	print_row(label, s);
}

static void print_row_ms(const char *label, json_object *v)
{
	_cleanup_free_ char *s = ms_string(v);

	print_row(label, s);
}

/* [{phase, ms}] as two aligned columns, ms with 3 decimals */
static void print_phases(json_object *ph)
{
	size_t n = json_object_array_length(ph);

	printf("  %-10s %10s\n", "PHASE", "MS");
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(ph, i), *ms = jget(e, "ms");

		printf("  %-10s %10.3f\n", jstr(e, "phase") ?: "?", ms ? json_object_get_double(ms) : 0.0);
	}
}

/* The verdict (update.completed data, the reply of update.start with wait) as a readable table. */
static void print_verdict(json_object *vd)
{
	json_object *vp = jget(vd, "vmpin"), *ph = jget(vd, "phases"), *st = jget(vd, "status_after");
	char buf[512];

	snprintf(buf, sizeof(buf), "%s of %s", json_object_get_string(jget(vd, "id")),
		 jstr(vd, "instance") ?: "?");
	print_row("update", buf);
	print_row("result", jstr(vd, "result"));
	snprintf(buf, sizeof(buf), "%s (%s)", jstr(vd, "path") ?: "-", jstr(vd, "path_reason") ?: "-");
	print_row("path", buf);
	print_row("mode", jstr(vd, "mode"));
	print_row_json("old pid", jget(vd, "old_pid"));
	print_row_json("new pid", jget(vd, "new_pid"));
	if (json_object_get_boolean(jget(vd, "restarted_previous")))
		print_row("restarted", "the previous binary took the device back");
	print_row_ms("pause", jget(vd, "pause_ms"));
	print_row_ms("daemon time", jget(vd, "daemon_ms"));
	if (jget(vd, "release_ms"))
		print_row_ms("release", jget(vd, "release_ms"));
	print_row_ms("total", jget(vd, "total_ms"));
	if (vp) {
		snprintf(buf, sizeof(buf), "expected %" PRId64 " kB, old %" PRId64 " -> %" PRId64 " kB, new %" PRId64
			 " -> %" PRId64 " kB, moved %s",
			 json_object_get_int64(jget(vp, "expected_kb")), json_object_get_int64(jget(vp, "old_before_kb")),
			 json_object_get_int64(jget(vp, "old_after_kb")), json_object_get_int64(jget(vp, "new_before_kb")),
			 json_object_get_int64(jget(vp, "new_after_kb")),
			 json_object_get_boolean(jget(vp, "moved_ok")) ? "ok" : "NOT ok");
		print_row("VmPin", buf);
	}
	if (jget(vd, "iommufd")) {
		/* iommufd/VFIO devices (docs/IOMMUFD.md): their share of VmPin, moved by CHANGE_PROCESS, and a mixed
		 * instance's vhost-vdpa share beside it */
		json_object *io = jget(vd, "iommufd");

		snprintf(buf, sizeof(buf), "%" PRId64 " kB (%s accounting), moved by CHANGE_PROCESS on %s; vhost-vdpa %" PRId64
			 " kB%s",
			 json_object_get_int64(jget(io, "pinned_kb")), jstr(io, "accounting") ?: "?",
			 jget(io, "moved") ? json_object_to_json_string_ext(jget(io, "moved"), JSON_C_TO_STRING_PLAIN) : "[]",
			 json_object_get_int64(jget(io, "vhost_vdpa_kb")),
			 json_object_get_boolean(jget(io, "vhost_vdpa_repinned")) ? " (re-pinned)" : "");
		print_row("iommufd", buf);
	}
	if (st && json_object_is_type(st, json_type_array)) {
		size_t n = json_object_array_length(st), len = 0;

		buf[0] = '\0';
		for (size_t i = 0; i < n && len < sizeof(buf); i++) {
			json_object *e = json_object_array_get_idx(st, i), *s = jget(e, "status");
			int k = snprintf(buf + len, sizeof(buf) - len, "%s%s=", i ? ", " : "", jstr(e, "device") ?: "?");

			if (k > 0)
				len += (size_t)k;
			if (len < sizeof(buf)) {
				k = s ? snprintf(buf + len, sizeof(buf) - len, "0x%02x", json_object_get_int(s))
				      : snprintf(buf + len, sizeof(buf) - len, "?");
				if (k > 0)
					len += (size_t)k;
			}
		}
		print_row("device status", buf);
	}
	if (jget(vd, "device_lost"))
		print_row_json("device lost", jget(vd, "device_lost"));
	if (jget(vd, "error"))
		print_row("error", jstr(vd, "error"));
	if (ph && json_object_is_type(ph, json_type_array)) {
		printf("phases:\n");
		print_phases(ph);
	}
}

struct update_wait {
	const char *instance;
	uint64_t id;
	bool have_id;
	json_object *verdict; /* owned: the update.completed data of this update */
};

static bool update_wait_done(void *ud)
{
	return ((const struct update_wait *)ud)->verdict != NULL;
}

/* Events of the instance while `update start` waits: progress of this update on stderr, its verdict kept. */
static void on_update_event(struct vlu *v, const char *name, json_object *event, void *userdata)
{
	struct update_wait *w = userdata;
	json_object *data = jget(event, "data"), *id = jget(data, "id");

	(void)v;
	if (!name || strncmp(name, "update.", 7) != 0 || !w->have_id || !id ||
	    (uint64_t)json_object_get_uint64(id) != w->id)
		return;
	if (strcmp(name, "update.completed") == 0) {
		if (!w->verdict)
			w->verdict = json_object_get(data);
		return;
	}
	if (strcmp(name, "update.phase") == 0) {
		json_object *t = jget(data, "t_ms");

		fprintf(stderr, "vluctl: update %" PRIu64 " of %s: phase %s (%.3f ms)\n", w->id, w->instance,
			jstr(data, "phase") ?: "?", t ? json_object_get_double(t) : 0.0);
	} else {
		fprintf(stderr, "vluctl: update %" PRIu64 " of %s: %s", w->id, w->instance, name + 7);
		json_object_object_foreach(data, key, val) {
			if (strcmp(key, "instance") == 0 || strcmp(key, "id") == 0 || strcmp(key, "mode") == 0 ||
			    strcmp(key, "path") == 0)
				continue;
			fprintf(stderr, " %s=", key);
			print_value(stderr, val);
		}
		fputc('\n', stderr);
	}
	fflush(stderr);
}

static int verb_update_start(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "mode", required_argument, NULL, 'm' },
		{ "path", required_argument, NULL, 'p' },
		{ "binary", required_argument, NULL, 'b' },
		{ "arg", required_argument, NULL, 'a' },
		{ "successor-pid", required_argument, NULL, 'P' },
		{ "allow-disruptive", no_argument, NULL, 'D' },
		{ "no-wait", no_argument, NULL, 'N' },
		/* the global options are also accepted here, for convenience */
		{ "timeout", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{},
	};
	_cleanup_json_ json_object *args = json_object_new_object(), *av = NULL, *ret = NULL;
	struct update_wait w = { 0 };
	const char *mode = NULL, *path = NULL, *binary = NULL, *instance;
	bool disruptive = false, nowait = false;
	long succ = 0;
	struct vlu *v = NULL;
	int c, r, ex, wait_ms;
	int64_t deadline;

	if (!args)
		return EXIT_ERROR;
	optind = 0; /* glibc: reinitialise; permute, so the options may follow INSTANCE */
	while ((c = getopt_long(argc, argv, "m:p:b:a:t:j", opts, NULL)) >= 0) {
		switch (c) {
		case 'm':
			mode = optarg;
			break;
		case 'p':
			path = optarg;
			break;
		case 'b':
			binary = optarg;
			break;
		case 'a':
			if (!av && !(av = json_object_new_array()))
				return EXIT_ERROR;
			json_object_array_add(av, json_object_new_string(optarg));
			break;
		case 'P': {
			char *end;

			errno = 0;
			succ = strtol(optarg, &end, 10);
			if (errno || *end || !*optarg || succ < 1 || succ > 4194304) {
				fprintf(stderr, "vluctl: --successor-pid wants a pid\n");
				return EXIT_USAGE;
			}
			break;
		}
		case 'D':
			disruptive = true;
			break;
		case 'N':
			nowait = true;
			break;
		case 't':
			if (parse_timeout(optarg) < 0)
				return EXIT_USAGE;
			break;
		case 'j':
			arg_json = true;
			break;
		default:
			return verb_usage("update", "start");
		}
	}
	if (optind + 1 != argc)
		return verb_usage("update", "start");
	instance = argv[optind];
	if (!vlu_name_valid(instance)) {
		fprintf(stderr, "vluctl: invalid instance name: %s\n", instance);
		return EXIT_USAGE;
	}
	if (!mode || (strcmp(mode, "exec") != 0 && strcmp(mode, "transfer") != 0)) {
		fprintf(stderr, "vluctl: update start needs --mode exec or --mode transfer\n");
		return EXIT_USAGE;
	}
	if (path && strcmp(path, "auto") != 0 && strcmp(path, "A") != 0 && strcmp(path, "B") != 0 &&
	    strcmp(path, "C") != 0) {
		fprintf(stderr, "vluctl: --path wants auto, A, B or C\n");
		return EXIT_USAGE;
	}
	if (succ && strcmp(mode, "transfer") != 0) {
		fprintf(stderr, "vluctl: --successor-pid is for --mode transfer\n");
		return EXIT_USAGE;
	}
	json_object_object_add(args, "instance", json_object_new_string(instance));
	json_object_object_add(args, "mode", json_object_new_string(mode));
	if (path)
		json_object_object_add(args, "path", json_object_new_string(path));
	if (binary)
		json_object_object_add(args, "binary", json_object_new_string(binary));
	if (av)
		json_object_object_add(args, "argv", TAKE_PTR(av));
	if (succ)
		json_object_object_add(args, "successor_pid", json_object_new_int((int)succ));
	if (disruptive)
		json_object_object_add(args, "allow_disruptive", json_object_new_boolean(true));
	/* The verdict comes as the update.completed event of this connection's subscription, so that the
	 * phases can be printed as they happen (a waiting call would queue them until its reply); and
	 * successor_pid needs wait:false anyway (its reply carries the token). */
	json_object_object_add(args, "wait", json_object_new_boolean(false));

	ex = do_connect(&v);
	if (ex != EXIT_OK)
		return ex;
	wait_ms = arg_timeout_given ? arg_timeout : update_wait_ms(v);
	if (!nowait) {
		/* subscribe first: no event of the update can be missed */
		r = vlu_subscribe(v, instance);
		if (r < 0) {
			ex = report_failure(v, "events.subscribe", r);
			vlu_close(v);
			return ex;
		}
		w.instance = instance;
		vlu_set_event_callback(v, on_update_event, &w);
	}
	r = vlu_call(v, "update.start", args, NULL, 0, arg_timeout, &ret, NULL, NULL);
	if (r < 0) {
		ex = report_failure(v, "update.start", r);
		vlu_close(v);
		return ex;
	}
	w.id = json_object_get_uint64(jget(ret, "id"));
	w.have_id = jget(ret, "id") != NULL;
	if (nowait || succ) {
		/* --successor-pid: the token the named process claims with, before the wait */
		if (arg_json)
			print_json(ret);
		else
			print_kv(ret, "");
		fflush(stdout);
		if (nowait) {
			vlu_close(v);
			return EXIT_OK;
		}
	}
	if (!w.have_id) {
		fprintf(stderr, "vluctl: update.start: the reply carries no update id\n");
		vlu_close(v);
		return EXIT_ERROR;
	}
	deadline = wait_ms < 0 ? -1 : now_ms() + wait_ms;
	r = pump_events(v, deadline, update_wait_done, &w);
	if (r == -ETIME) {
		fprintf(stderr,
			"vluctl: update %" PRIu64 " of %s: no verdict within %d ms (see `vluctl update status %s`)\n",
			w.id, instance, wait_ms, instance);
		vlu_close(v);
		return EXIT_TIMEOUT;
	}
	if (r < 0) {
		fprintf(stderr, "vluctl: update %" PRIu64 " of %s: connection lost before the verdict: %s\n", w.id,
			instance, strerror(-r));
		vlu_close(v);
		return exit_of(r);
	}
	vlu_close(v);
	if (arg_json)
		print_json(w.verdict);
	else
		print_verdict(w.verdict);
	ex = strcmp(jstr(w.verdict, "result") ?: "", "ok") == 0 ? EXIT_OK : EXIT_ERROR;
	if (ex != EXIT_OK)
		fprintf(stderr, "vluctl: update %" PRIu64 " of %s %s: %s\n", w.id, instance,
			jstr(w.verdict, "result") ?: "ended without a result", jstr(w.verdict, "error") ?: "?");
	json_object_put(w.verdict);
	return ex;
}

/* update.status / update.abort of the instance argv[1]: EXIT_OK with *ret, or the exit status */
static int update_call(const char *command, const char *instance, json_object **ret)
{
	_cleanup_json_ json_object *args = NULL;
	struct vlu *v = NULL;
	int r, ex;

	if (!vlu_name_valid(instance)) {
		fprintf(stderr, "vluctl: invalid instance name: %s\n", instance);
		return EXIT_USAGE;
	}
	args = json_object_new_object();
	if (!args)
		return EXIT_ERROR;
	json_object_object_add(args, "instance", json_object_new_string(instance));
	ex = do_connect(&v);
	if (ex != EXIT_OK)
		return ex;
	r = vlu_call(v, command, args, NULL, 0, arg_timeout, ret, NULL, NULL);
	if (r < 0)
		ex = report_failure(v, command, r);
	vlu_close(v);
	return ex;
}

static int verb_update_status(int argc, char **argv)
{
	_cleanup_json_ json_object *ret = NULL;
	json_object *run, *last, *maps;
	char buf[512];
	int ex;

	ex = update_call("update.status", argv[1], &ret);
	if (ex != EXIT_OK)
		return ex;
	if (arg_json) {
		print_json(ret);
		return EXIT_OK;
	}
	run = jget(ret, "running");
	last = jget(ret, "last");
	maps = jget(ret, "mappings");
	print_row("instance", jstr(ret, "instance"));
	print_row("mappings", maps && json_object_is_type(maps, json_type_array)
				      ? (snprintf(buf, sizeof(buf), "%zu declared", json_object_array_length(maps)), buf)
				      : "none declared");
	if (run) {
		json_object *t = jget(run, "t_ms"), *ph = jget(run, "phases");

		snprintf(buf, sizeof(buf), "update %s, %s mode, path %s (%s), phase %s, %.3f ms so far",
			 json_object_get_string(jget(run, "id")), jstr(run, "mode") ?: "?", jstr(run, "path") ?: "?",
			 jstr(run, "path_reason") ?: "-", jstr(run, "phase") ?: "?", t ? json_object_get_double(t) : 0.0);
		print_row("running", buf);
		if (ph && json_object_is_type(ph, json_type_array) && json_object_array_length(ph) > 0) {
			printf("phases so far:\n");
			print_phases(ph);
		}
	} else
		print_row("running", "no update is running");
	if (last) {
		printf("last update:\n");
		print_verdict(last);
	} else
		print_row("last update", "none");
	return EXIT_OK;
}

static int verb_update_abort(int argc, char **argv)
{
	_cleanup_json_ json_object *ret = NULL;
	json_object *last;
	int ex;

	ex = update_call("update.abort", argv[1], &ret);
	if (ex != EXIT_OK)
		return ex;
	if (arg_json) {
		print_json(ret);
		return EXIT_OK;
	}
	last = jget(ret, "last");
	printf("aborted update %s of %s\n", json_object_get_string(jget(ret, "id")), argv[1]);
	if (last && json_object_get_uint64(jget(last, "id")) == json_object_get_uint64(jget(ret, "id")))
		print_verdict(last);
	return EXIT_OK;
}

/* ---------------------------------------------------------------- simple verbs */

static int verb_status(int argc, char **argv)
{
	return simple("status", NULL, NULL, NULL);
}

static int verb_instances(int argc, char **argv)
{
	static const char *const pref[] = { "name", "state", "pid", "uid", NULL };

	return simple("instance.list", NULL, "instances", pref);
}

static int verb_devices(int argc, char **argv)
{
	static const char *const pref[] = { "name", "path", "holder", "status", NULL };

	return simple("device.list", NULL, "devices", pref);
}

static int verb_fds(int argc, char **argv)
{
	static const char *const pref[] = { "instance", "name", "type", "dev", "ino", "rdev", "age_ms", NULL };
	_cleanup_json_ json_object *args = json_object_new_object();

	if (!args)
		return EXIT_ERROR;
	if (argc == 2) {
		if (!vlu_name_valid(argv[1])) {
			fprintf(stderr, "vluctl: invalid instance name: %s\n", argv[1]);
			return EXIT_USAGE;
		}
		json_object_object_add(args, "instance", json_object_new_string(argv[1]));
	}
	return simple("fd.list", args, "fds", pref);
}

static int verb_release(int argc, char **argv)
{
	_cleanup_json_ json_object *args = NULL;

	if (!vlu_name_valid(argv[1])) {
		fprintf(stderr, "vluctl: invalid instance name: %s\n", argv[1]);
		return EXIT_USAGE;
	}
	args = json_object_new_object();
	if (!args)
		return EXIT_ERROR;
	json_object_object_add(args, "name", json_object_new_string(argv[1]));
	return simple("instance.release", args, NULL, NULL);
}

/* ---------------------------------------------------------------- run */

/* `vluctl run`: the launcher of an unmodified VMM (one that takes its device fds by number, e.g. QEMU's
 * `-netdev vhost-vdpa,vhostfd=N`).  It drops to --user first (so vlud sees the instance's own uid),
 * registers the instance (reattach: an orphan of a killed run is adopted), has vlud open each device
 * (a device an orphan still holds is closed and opened afresh by device.reopen, reserved to the
 * instance throughout: the dead VMM's owner and mappings go with the close), then forks: the child places the fds at the numbers named and execs the program;
 * the parent stays, a small supervisor holding the vlud connection (so the instance stays attached
 * while the program runs and is orphaned, devices kept, when both are gone), forwards signals and
 * reports the program's exit.  The child dies with the parent (PR_SET_PDEATHSIG). */

#define RUN_MAX_DEVICES 16
#define RUN_EXIT_NOT_FOUND 127
#define RUN_EXIT_NOT_EXEC 126
#define RUN_REOPEN_TIMEOUT_MS 60000 /* device.reopen: the kernel's release of the old fd, then the open */

struct run_device {
	const char *device; /* vdpa device name or node path, as given; --fd: the stored fd's name */
	bool stored;	    /* --fd: an fd the instance stored (fd.retrieve), not a device */
	int target;	    /* the fd number in the program */
	int fd;		    /* our copy of vlud's fd, -EBADF */
	bool reopened;	    /* an orphan held it: closed and opened afresh */
	json_object *info;  /* device.open's return */
};

struct run_args {
	const char *instance;
	const char *user;
	const char *report;
	bool allow_stdio;
	struct run_device dev[RUN_MAX_DEVICES];
	size_t ndev;
	char **argv; /* the program and its arguments */
};

/* what run_parse_device() and the run allocated and opened: freed on every return of verb_run */
static void run_args_done(struct run_args *a)
{
	for (size_t i = 0; i < a->ndev; i++) {
		safe_close(a->dev[i].fd);
		json_object_put(a->dev[i].info);
		free((char *)a->dev[i].device);
	}
	a->ndev = 0;
}

static int run_parse_device(struct run_args *a, const char *spec, bool stored)
{
	const char *opt = stored ? "--fd" : "--device";
	const char *eq = strrchr(spec, '=');
	struct rlimit rl = { .rlim_cur = 1024 };
	char *end;
	long n;

	if (!eq || eq == spec || !eq[1]) {
		fprintf(stderr, "vluctl: run: %s wants NAME=FD (e.g. %s=3): %s\n", opt, stored ? "ram" : "vdpa0", spec);
		return -EINVAL;
	}
	errno = 0;
	n = strtol(eq + 1, &end, 10);
	(void)getrlimit(RLIMIT_NOFILE, &rl);
	if (errno || *end || n < 0 || (rlim_t)n >= rl.rlim_cur || n > INT_MAX) {
		fprintf(stderr, "vluctl: run: %s %s: the fd number must be 0..%llu (RLIMIT_NOFILE)\n", opt, spec,
			(unsigned long long)rl.rlim_cur - 1);
		return -EINVAL;
	}
	if (a->ndev >= RUN_MAX_DEVICES) {
		fprintf(stderr, "vluctl: run: at most %d devices\n", RUN_MAX_DEVICES);
		return -E2BIG;
	}
	a->dev[a->ndev] = (struct run_device){ .device = strndup(spec, (size_t)(eq - spec)), .target = (int)n,
					      .fd = -EBADF, .stored = stored };
	if (!a->dev[a->ndev].device)
		return -ENOMEM;
	a->ndev++;
	return 0;
}

/* the fd numbers: distinct, distinct devices, 0..2 only with --allow-stdio */
static int run_check_devices(const struct run_args *a)
{
	for (size_t i = 0; i < a->ndev; i++) {
		if (a->dev[i].target <= 2 && !a->allow_stdio) {
			fprintf(stderr,
				"vluctl: run: %s %s=%d would replace the program's %s: refused (--allow-stdio "
				"to mean it)\n",
				a->dev[i].stored ? "--fd" : "--device", a->dev[i].device, a->dev[i].target,
				a->dev[i].target == 0 ? "stdin" : a->dev[i].target == 1 ? "stdout" : "stderr");
			return -EINVAL;
		}
		for (size_t k = 0; k < i; k++) {
			if (a->dev[k].target == a->dev[i].target) {
				fprintf(stderr, "vluctl: run: fd %d named twice (%s and %s)\n", a->dev[i].target,
					a->dev[k].device, a->dev[i].device);
				return -EINVAL;
			}
			if (strcmp(a->dev[k].device, a->dev[i].device) == 0) {
				fprintf(stderr, "vluctl: run: %s named twice\n", a->dev[i].device);
				return -EINVAL;
			}
		}
	}
	return 0;
}

/* Become USER (name or number): groups, gid, uid, in that order; only root may change.  0 or exit code. */
static int run_drop_user(const char *user, uid_t *ret_uid, gid_t *ret_gid)
{
	struct passwd *pw;
	uid_t uid;
	gid_t gid;
	char *end;

	errno = 0;
	pw = getpwnam(user);
	if (!pw) {
		unsigned long n = strtoul(user, &end, 10);

		if (!*user || *end || n >= (uid_t)-1) {
			fprintf(stderr, "vluctl: run: --user %s: no such user\n", user);
			return EXIT_USAGE;
		}
		pw = getpwuid((uid_t)n);
		uid = (uid_t)n;
		gid = pw ? pw->pw_gid : (gid_t)n;
	} else {
		uid = pw->pw_uid;
		gid = pw->pw_gid;
	}
	if (geteuid() != 0) {
		if (uid == getuid() && uid == geteuid())
			goto done;
		fprintf(stderr, "vluctl: run: --user %s needs root (running as uid %u)\n", user, (unsigned)geteuid());
		return EXIT_ERROR;
	}
	if ((pw ? initgroups(pw->pw_name, gid) : setgroups(0, NULL)) < 0 || setgid(gid) < 0 || setuid(uid) < 0) {
		fprintf(stderr, "vluctl: run: cannot become uid %u gid %u: %s\n", (unsigned)uid, (unsigned)gid,
			strerror(errno));
		return EXIT_ERROR;
	}
	if (uid != 0 && (setuid(0) == 0 || geteuid() != uid || getegid() != gid)) {
		fprintf(stderr, "vluctl: run: the drop to uid %u did not hold\n", (unsigned)uid);
		return EXIT_ERROR;
	}
done:
	*ret_uid = uid;
	*ret_gid = gid;
	return EXIT_OK;
}

/* The program as execvp() would find it (PATH search), checked executable by the uid we run as:
 * 0 and *ret (malloc'd), or RUN_EXIT_NOT_FOUND / RUN_EXIT_NOT_EXEC with the reason on stderr. */
static int run_find_program(const char *prog, char **ret)
{
	const char *path = getenv("PATH");
	int err = ENOENT;

	if (!*prog) {
		fprintf(stderr, "vluctl: run: empty program name\n");
		return RUN_EXIT_NOT_FOUND;
	}
	if (strchr(prog, '/')) {
		if (access(prog, X_OK) == 0) {
			*ret = strdup(prog);
			return *ret ? 0 : EXIT_ERROR;
		}
		err = errno;
	} else {
		if (!path || !*path)
			path = "/usr/local/bin:/usr/bin:/bin";
		for (const char *p = path; p; p = strchr(p, ':') ? strchr(p, ':') + 1 : NULL) {
			size_t len = strcspn(p, ":");
			char *cand = NULL;

			if (asprintf(&cand, "%.*s%s%s", (int)len, p, len ? "/" : "", prog) < 0)
				return EXIT_ERROR;
			if (access(cand, X_OK) == 0) {
				struct stat st;

				if (stat(cand, &st) == 0 && S_ISREG(st.st_mode)) {
					*ret = cand;
					return 0;
				}
			} else if (errno == EACCES)
				err = EACCES;
			free(cand);
		}
	}
	fprintf(stderr, "vluctl: run: %s: %s\n", prog,
		err == ENOENT ? "program not found" : err == EACCES ? "not executable" : strerror(err));
	return err == ENOENT ? RUN_EXIT_NOT_FOUND : RUN_EXIT_NOT_EXEC;
}

/* (Re)write the report into fd (opened by the caller before the drop to --user; -EBADF: none). */
static void run_report_write(int fd, json_object *report)
{
	const char *s;
	size_t len;

	if (fd < 0)
		return;
	s = json_object_to_json_string_ext(report, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	len = strlen(s);
	if (ftruncate(fd, 0) < 0 || pwrite(fd, s, len, 0) != (ssize_t)len || pwrite(fd, "\n", 1, (off_t)len) != 1)
		fprintf(stderr, "vluctl: run: --report: %s\n", strerror(errno));
}

/* The names of the fds the instance holds (fd.list), as one JSON array; NULL on failure. */
static json_object *run_held(struct vlu *v, const char *instance)
{
	_cleanup_json_ json_object *args = json_object_new_object(), *ret = NULL;
	json_object *fds, *names;

	json_object_object_add(args, "instance", json_object_new_string(instance));
	if (vlu_call(v, "fd.list", args, NULL, 0, arg_timeout, &ret, NULL, NULL) < 0)
		return NULL;
	fds = jget(ret, "fds");
	names = json_object_new_array();
	for (size_t i = 0; fds && i < json_object_array_length(fds); i++) {
		json_object *e = json_object_array_get_idx(fds, i);

		json_object_array_add(names, json_object_new_object());
		json_object_object_add(json_object_array_get_idx(names, i), "name",
				       json_object_get(jget(e, "name")));
		json_object_object_add(json_object_array_get_idx(names, i), "device",
				       json_object_get(jget(e, "device")));
	}
	return names;
}

/* Open each device, or, when the reattached orphan holds it, have vlud reopen it (device.reopen: closed
 * and opened afresh, reserved to the instance throughout).  0 or an exit code. */
static int run_open_devices(struct vlu *v, struct run_args *a, json_object *held)
{
	for (size_t i = 0; i < a->ndev; i++) {
		struct run_device *d = &a->dev[i];
		_cleanup_json_ json_object *args = json_object_new_object();
		_cleanup_free_ int *fds = NULL;
		const char *held_name = NULL;
		size_t nfds = 0;
		int r;

		if (d->stored) {
			r = vlu_fd_retrieve(v, &d->device, 1, &d->fd);
			if (r < 0)
				return report_failure(v, "fd.retrieve", r);
			continue;
		}
		for (size_t k = 0; held && k < json_object_array_length(held); k++) {
			json_object *e = json_object_array_get_idx(held, k);

			if (jstr(e, "name") && jstr(e, "device") && strcmp(jstr(e, "device"), d->device) == 0) {
				held_name = jstr(e, "name");
				d->reopened = true;
				break;
			}
		}
		if (d->reopened) {
			/* the dead VMM was its owner (SET_OWNER, mappings, pinned pages): only a close resets
			 * it.  device.reopen closes vlud's copy and opens the node afresh with the device
			 * reserved to this instance throughout (no other tenant can open it in between); the
			 * close runs the kernel's release (unpinning a large VM's RAM): wait longer than for a
			 * plain call unless --timeout says otherwise */
			r = vlu_device_reopen(v, held_name, arg_timeout_given ? arg_timeout : RUN_REOPEN_TIMEOUT_MS,
					      &d->fd, &d->info);
			if (r == -EPROTO && vlu_last_error(v, NULL, NULL) < 0) {
				fprintf(stderr,
					"vluctl: run: device.reopen %s: malformed reply (not one fd described by its fds "
					"entry, held as %s, with that character device's rdev, and a device object)\n",
					d->device, held_name);
				return EXIT_ERROR;
			}
			if (r < 0) {
				char what[128];

				snprintf(what, sizeof(what), "device.reopen %.64s", d->device);
				return report_failure(v, what, r);
			}
			continue;
		}
		json_object_object_add(args, "device", json_object_new_string(d->device));
		r = vlu_call(v, "device.open", args, NULL, 0, arg_timeout, &d->info, &fds, &nfds);
		if (r < 0) {
			char what[128];

			snprintf(what, sizeof(what), "device.open %.64s", d->device);
			return report_failure(v, what, r);
		}
		if (nfds != 1) {
			close_many(fds, nfds);
			fprintf(stderr, "vluctl: run: device.open %s: %zu fds in the reply, not 1\n", d->device, nfds);
			return EXIT_ERROR;
		}
		d->fd = fds[0];
	}
	return EXIT_OK;
}

/* In the child: each device fd at its number (CLOEXEC cleared by dup2), every other fd we made stays
 * close-on-exec.  First everything we still need is moved above the highest target, so that no dup2
 * overwrites a source (or the error pipe) that a later one needs. */
static int run_place_fds(struct run_args *a, int *errpipe)
{
	int top = 2;

	for (size_t i = 0; i < a->ndev; i++)
		top = a->dev[i].target > top ? a->dev[i].target : top;
	for (size_t i = 0; i < a->ndev; i++) {
		int n = fcntl(a->dev[i].fd, F_DUPFD_CLOEXEC, top + 1);

		if (n < 0)
			return -errno;
		a->dev[i].fd = n; /* the old number closes at exec (CLOEXEC) or is overwritten below */
	}
	if (*errpipe <= top) {
		int n = fcntl(*errpipe, F_DUPFD_CLOEXEC, top + 1);

		if (n < 0)
			return -errno;
		*errpipe = n;
	}
	for (size_t i = 0; i < a->ndev; i++)
		if (dup2(a->dev[i].fd, a->dev[i].target) < 0)
			return -errno;
	return 0;
}

static const int run_forwarded[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };

static __attribute__((noreturn)) void run_child(struct run_args *a, const char *prog, int errpipe, pid_t parent,
				 const sigset_t *oldmask)
{
	int err;

	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
		err = ESRCH; /* the launcher is already gone: run nothing it cannot report */
	else if ((err = -run_place_fds(a, &errpipe)) == 0) {
		sigprocmask(SIG_SETMASK, oldmask, NULL);
		execv(prog, a->argv);
		err = errno;
	}
	(void)!write(errpipe, &err, sizeof(err));
	_exit(err == ENOENT ? RUN_EXIT_NOT_FOUND : RUN_EXIT_NOT_EXEC);
}

static json_object *run_device_json(const struct run_device *d)
{
	json_object *o = json_object_new_object(), *f = NULL, *fds = jget(d->info, "fds");
	json_object *dev = jget(d->info, "device");

	if (fds && json_object_is_type(fds, json_type_array))
		f = json_object_array_get_idx(fds, 0);

	if (d->stored) {
		struct stat st;

		json_object_object_add(o, "stored", json_object_new_string(d->device));
		json_object_object_add(o, "fd", json_object_new_int(d->target));
		if (fstat(d->fd, &st) == 0)
			json_object_object_add(o, "ino", json_object_new_uint64(st.st_ino));
		return o;
	}
	json_object_object_add(o, "device", json_object_new_string(d->device));
	json_object_object_add(o, "path", json_object_get(jget(dev, "path")));
	json_object_object_add(o, "held_as", json_object_get(jget(f, "name")));
	json_object_object_add(o, "fd", json_object_new_int(d->target));
	json_object_object_add(o, "rdev", json_object_get(jget(f, "rdev")));
	json_object_object_add(o, "ino", json_object_get(jget(f, "ino")));
	json_object_object_add(o, "reopened", json_object_new_boolean(d->reopened));
	if (d->reopened) /* device.reopen: the kernel's release of the old fd */
		json_object_object_add(o, "release_ms", json_object_get(jget(d->info, "release_ms")));
	json_object_object_add(o, "device_id", json_object_get(jget(dev, "device_id")));
	json_object_object_add(o, "vqs", json_object_get(jget(dev, "vqs")));
	json_object_object_add(o, "features", json_object_get(jget(dev, "features")));
	return o;
}

/* Wait for the child, forwarding the signals of run_forwarded (blocked in us); its wait status. */
static int run_wait(pid_t child)
{
	sigset_t set;
	int status;

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	for (size_t i = 0; i < ELEMENTSOF(run_forwarded); i++)
		sigaddset(&set, run_forwarded[i]);
	for (;;) {
		pid_t p = waitpid(child, &status, WNOHANG);
		siginfo_t si;

		if (p == child)
			return status;
		if (p < 0 && errno != EINTR)
			return -errno;
		if (sigwaitinfo(&set, &si) > 0 && si.si_signo != SIGCHLD)
			(void)kill(child, si.si_signo);
	}
}

static int verb_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "device", required_argument, NULL, 'd' },
		{ "fd", required_argument, NULL, 'f' },
		{ "user", required_argument, NULL, 'u' },
		{ "allow-stdio", no_argument, NULL, 'S' },
		{ "report", required_argument, NULL, 'r' },
		{ "timeout", required_argument, NULL, 't' },
		{},
	};
	struct run_args a __attribute__((cleanup(run_args_done))) = { .instance = argv[1] };
	_cleanup_json_ json_object *reg = NULL, *args = NULL, *report = NULL, *held = NULL;
	_cleanup_free_ char *prog = NULL;
	sigset_t block, oldmask;
	struct vlu *v = NULL;
	int errpipe[2] = { -EBADF, -EBADF };
	_cleanup_close_ int report_fd = -EBADF;
	int c, r, ex, status, err = 0;
	uid_t uid = getuid();
	gid_t gid = getgid();
	bool reattached = false;
	int64_t t0;
	pid_t child;
	ssize_t n;

	optind = 1;
	while ((c = getopt_long(argc - 1, argv + 1, "+d:f:u:r:t:", opts, NULL)) >= 0) {
		switch (c) {
		case 'd':
			if (run_parse_device(&a, optarg, false) < 0)
				return EXIT_USAGE;
			break;
		case 'f':
			if (run_parse_device(&a, optarg, true) < 0)
				return EXIT_USAGE;
			break;
		case 'u':
			a.user = optarg;
			break;
		case 'S':
			a.allow_stdio = true;
			break;
		case 'r':
			a.report = optarg;
			break;
		case 't':
			if (parse_timeout(optarg) < 0)
				return EXIT_USAGE;
			break;
		default:
			return verb_usage(NULL, "run");
		}
	}
	if (optind >= argc - 1) {
		fprintf(stderr, "vluctl: run: no program to run (after --)\n");
		return verb_usage(NULL, "run");
	}
	a.argv = argv + 1 + optind;
	if (!vlu_name_valid(a.instance)) {
		fprintf(stderr, "vluctl: invalid instance name: %s\n", a.instance);
		return EXIT_USAGE;
	}
	if (run_check_devices(&a) < 0)
		return EXIT_USAGE;

	/* the report file is the caller's: opened before the drop */
	if (a.report) {
		report_fd = open(a.report, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0644);
		if (report_fd < 0) {
			fprintf(stderr, "vluctl: run: --report %s: %s\n", a.report, strerror(errno));
			return EXIT_ERROR;
		}
	}
	/* the uid vlud must see is the instance's: drop before connecting */
	if (a.user && (ex = run_drop_user(a.user, &uid, &gid)) != EXIT_OK)
		return ex;
	if ((ex = run_find_program(a.argv[0], &prog)) != 0)
		return ex;

	ex = do_connect(&v);
	if (ex != EXIT_OK)
		return ex;
	args = json_object_new_object();
	json_object_object_add(args, "name", json_object_new_string(a.instance));
	json_object_object_add(args, "reattach", json_object_new_boolean(true));
	r = vlu_call(v, "instance.register", args, NULL, 0, arg_timeout, &reg, NULL, NULL);
	if (r < 0) {
		ex = report_failure(v, "instance.register", r);
		goto out;
	}
	reattached = json_object_get_boolean(jget(reg, "reattached"));
	if (reattached)
		held = run_held(v, a.instance);
	ex = run_open_devices(v, &a, held);
	if (ex != EXIT_OK)
		goto refused;

	report = json_object_new_object();
	json_object_object_add(report, "instance", json_object_new_string(a.instance));
	json_object_object_add(report, "reattached", json_object_new_boolean(reattached));
	json_object_object_add(report, "launcher_pid", json_object_new_int((int)getpid()));
	json_object_object_add(report, "uid", json_object_new_int64(uid));
	json_object_object_add(report, "gid", json_object_new_int64(gid));
	json_object_object_add(report, "program", json_object_new_string(prog));
	json_object *jdevs = json_object_new_array();
	for (size_t i = 0; i < a.ndev; i++) {
		json_object *d = run_device_json(&a.dev[i]);

		json_object_array_add(jdevs, d);
		if (a.dev[i].stored)
			fprintf(stderr, "vluctl: run: stored fd %s retrieved from vlud, fd %d of the program\n",
				a.dev[i].device, a.dev[i].target);
		else
			fprintf(stderr, "vluctl: run: %s: %s %s by vlud (held as %s), fd %d of the program\n",
				a.dev[i].device, jstr(d, "path") ?: "?",
				a.dev[i].reopened ? "closed and reopened" : "opened", jstr(d, "held_as") ?: "?",
				a.dev[i].target);
	}
	json_object_object_add(report, "devices", jdevs);

	if (pipe2(errpipe, O_CLOEXEC) < 0) {
		fprintf(stderr, "vluctl: run: pipe: %s\n", strerror(errno));
		ex = EXIT_ERROR;
		goto refused;
	}
	/* a caller that ignores SIGCHLD would have the program reaped behind our back */
	signal(SIGCHLD, SIG_DFL);
	sigemptyset(&block);
	sigaddset(&block, SIGCHLD);
	for (size_t i = 0; i < ELEMENTSOF(run_forwarded); i++)
		sigaddset(&block, run_forwarded[i]);
	sigprocmask(SIG_BLOCK, &block, &oldmask);
	fflush(NULL);
	t0 = now_ms();
	pid_t parent = getpid();
	child = fork();
	if (child < 0) {
		fprintf(stderr, "vluctl: run: fork: %s\n", strerror(errno));
		sigprocmask(SIG_SETMASK, &oldmask, NULL);
		ex = EXIT_ERROR;
		goto refused;
	}
	if (child == 0) {
		errpipe[0] = safe_close(errpipe[0]);
		run_child(&a, prog, errpipe[1], parent, &oldmask);
	}
	errpipe[1] = safe_close(errpipe[1]);
	for (size_t i = 0; i < a.ndev; i++)
		a.dev[i].fd = safe_close(a.dev[i].fd); /* vlud holds its own; the program has its copy */
	do
		n = read(errpipe[0], &err, sizeof(err));
	while (n < 0 && errno == EINTR);
	errpipe[0] = safe_close(errpipe[0]);
	json_object_object_add(report, "pid", json_object_new_int((int)child));
	if (n == sizeof(err)) {
		(void)run_wait(child);
		fprintf(stderr, "vluctl: run: cannot start %s: %s\n", prog, strerror(err));
		ex = err == ENOENT ? RUN_EXIT_NOT_FOUND : RUN_EXIT_NOT_EXEC;
		goto refused;
	}
	fprintf(stderr, "vluctl: run: instance %s (%s) runs %s as pid %d, uid %u gid %u\n", a.instance,
		reattached ? "reattached" : "registered", prog, (int)child, (unsigned)uid, (unsigned)gid);
	run_report_write(report_fd, report);

	status = run_wait(child);
	json_object *jexit = json_object_new_object();
	char how[64];
	if (status < 0) {
		snprintf(how, sizeof(how), "lost (%s)", strerror(-status));
		ex = EXIT_ERROR;
	} else if (WIFSIGNALED(status)) {
		snprintf(how, sizeof(how), "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
		json_object_object_add(jexit, "signal", json_object_new_int(WTERMSIG(status)));
		ex = 128 + WTERMSIG(status);
	} else {
		snprintf(how, sizeof(how), "exited with status %d", WEXITSTATUS(status));
		json_object_object_add(jexit, "code", json_object_new_int(WEXITSTATUS(status)));
		ex = WEXITSTATUS(status);
	}
	json_object_object_add(jexit, "how", json_object_new_string(how));
	json_object_object_add(jexit, "runtime_ms", json_object_new_int64(now_ms() - t0));
	json_object_put(held);
	held = run_held(v, a.instance);
	json_object_object_add(jexit, "held", held ? json_object_get(held) : NULL);
	json_object_object_add(report, "exit", jexit);
	fprintf(stderr,
		"vluctl: run: %s (pid %d) %s after %" PRId64 " ms; instance %s keeps %zu held fd(s) in vlud, "
		"orphaned now: `vluctl run %s ...` again reopens its devices, `vluctl release %s` frees them\n",
		prog, (int)child, how, now_ms() - t0, a.instance, held ? json_object_array_length(held) : 0,
		a.instance, a.instance);
	run_report_write(report_fd, report);
	goto out;

refused:
	/* nothing ran: a fresh instance goes again; an adopted orphan stays orphaned (with what it kept) */
	if (!reattached) {
		_cleanup_json_ json_object *rel = json_object_new_object();

		json_object_object_add(rel, "name", json_object_new_string(a.instance));
		(void)vlu_call(v, "instance.release", rel, NULL, 0, arg_timeout, NULL, NULL, NULL);
	}
out:
	safe_close(errpipe[0]);
	safe_close(errpipe[1]);
	vlu_close(v);
	return ex;
}

/* ---------------------------------------------------------------- the verb table */

#define VERB_ANY UINT_MAX

/* One command of the CLI, as in systemd's verb tables: the dispatcher checks the argument count
 * (argc counts the verb itself) before run(argc, argv) sees argv[0] == name; usage and help come from
 * the same rows.  A verb with sub-verbs (update) dispatches to its own table instead. */
struct verb {
	const char *name;
	unsigned min_args, max_args; /* VERB_ANY: no maximum */
	int (*run)(int argc, char **argv);
	const struct verb *sub;	     /* sub-verbs (run is NULL), terminated by an empty row */
	const char *synopsis;	     /* the arguments; '\n' continues on the next line */
	const char *help;	     /* one or more lines */
};

static int verb_help(int argc, char **argv);

static const struct verb update_verbs[] = {
	{ "start", 2, VERB_ANY, verb_update_start, NULL,
	  "INSTANCE --mode exec|transfer [--path auto|A|B|C] [--binary PATH]\n"
	  "[--arg ARG]... [--successor-pid PID] [--allow-disruptive] [--no-wait]",
	  "live-update an instance: phases on stderr as they happen,\n"
	  "then the verdict (exit 0 only if the result is ok)" },
	{ "status", 2, 2, verb_update_status, NULL, "INSTANCE",
	  "the running update of an instance, and the last verdict" },
	{ "abort", 2, 2, verb_update_abort, NULL, "INSTANCE", "roll back the running update of an instance now" },
	{},
};

static const struct verb verbs[] = {
	{ "status", 1, 1, verb_status, NULL, "", "daemon status" },
	{ "instances", 1, 1, verb_instances, NULL, "", "list instances" },
	{ "devices", 1, 1, verb_devices, NULL, "", "list configured devices" },
	{ "fds", 1, 2, verb_fds, NULL, "[INSTANCE]", "list held fds (all visible, or one instance's)" },
	{ "events", 1, VERB_ANY, verb_events, NULL, "[--follow] [--count N] [--instance NAME] [--event NAME]...",
	  "print events as they arrive: until N (default 1) arrived,\n"
	  "or with --follow until the daemon goes away; --event (up to 16):\n"
	  "only the events of these names" },
	{ "release", 2, 2, verb_release, NULL, "NAME", "release an instance (closes its held fds)" },
	{ "update", 1, VERB_ANY, NULL, update_verbs, NULL, NULL },
	{ "run", 3, VERB_ANY, verb_run, NULL,
	  "INSTANCE [--device NAME=FD]... [--fd NAME=FD]... [--user USER]\n[--allow-stdio] [--report FILE] -- PROGRAM [ARG]...",
	  "launch an unmodified VMM as INSTANCE with the devices vlud\n"
	  "opens at the fd numbers named; reports its exit" },
	{ "call", 2, 3, verb_call, NULL, "COMMAND [JSON-ARGS]", "send one raw request, print its return as JSON" },
	{ "help", 1, VERB_ANY, verb_help, NULL, "", "this text and the daemon's command table" },
	{},
};

/* the column of the help text in `vluctl --help` */
#define HELP_COLUMN 28

/* Print "group name synopsis" (group may be NULL) after lead, its continuation lines indented by indent
 * plus the group's width.  Returns the width of the last line, or -1 when it took several lines. */
static int print_synopsis(FILE *f, const char *lead, int indent, const char *group, const struct verb *v)
{
	const char *s = v->synopsis, *nl;
	int w, glen = group ? (int)strlen(group) + 1 : 0;

	nl = strchr(s, '\n');
	w = fprintf(f, "%s%s%s%s%s%.*s", lead, group ?: "", group ? " " : "", v->name, *s ? " " : "",
		    nl ? (int)(nl - s) : (int)strlen(s), s);
	if (!nl)
		return w;
	while (nl) {
		s = nl + 1;
		nl = strchr(s, '\n');
		fprintf(f, "\n%*s%.*s", indent + glen, "", nl ? (int)(nl - s) : (int)strlen(s), s);
	}
	return -1;
}

/* The Commands section of the usage: one entry per verb (sub-verbs under their group's name), the help
 * at HELP_COLUMN, on the synopsis' line when it fits. */
static void print_verbs(FILE *f, const char *group, const struct verb *table)
{
	for (const struct verb *v = table; v->name; v++) {
		const char *h, *nl;
		int w;

		if (v->sub) {
			print_verbs(f, v->name, v->sub);
			continue;
		}
		w = print_synopsis(f, "  ", 2, group, v);
		if (w < 0 || w > HELP_COLUMN - 2) {
			fputc('\n', f);
			w = 0;
		}
		for (h = v->help; h; h = nl ? nl + 1 : NULL) {
			nl = strchr(h, '\n');
			fprintf(f, "%*s%.*s\n", HELP_COLUMN - w, "", nl ? (int)(nl - h) : (int)strlen(h), h);
			w = 0;
		}
	}
}

static const struct verb *verb_find(const struct verb *table, const char *name)
{
	for (const struct verb *v = table; name && v->name; v++)
		if (strcmp(v->name, name) == 0)
			return v;
	return NULL;
}

/* "vluctl: usage: ..." with the synopsis of group's verb name (every verb of the group when name is NULL
 * or unknown) on stderr.  Returns EXIT_USAGE. */
static int verb_usage(const char *group, const char *name)
{
	const struct verb *g = group ? verb_find(verbs, group) : NULL;
	const struct verb *table = g ? g->sub : verbs, *v = verb_find(table, name);
	const char *lead = "vluctl: usage: ";

	if (v && v->sub) { /* a group: all of its verbs */
		group = v->name;
		table = v->sub;
		v = NULL;
	}
	for (const struct verb *x = v ?: table; x->name; x++) {
		if (!x->sub) {
			print_synopsis(stderr, lead, (int)strlen("vluctl: usage: "), group, x);
			fputc('\n', stderr);
			lead = "               ";
		}
		if (v)
			break;
	}
	return EXIT_USAGE;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: vluctl [--socket PATH] [--json] [--timeout MS] COMMAND [ARGS...]\n"
		"\n"
		"Operator CLI of vlud, the vDPA live-update supervisor.\n"
		"\n"
		"Commands:\n");
	print_verbs(f, NULL, verbs);
	fprintf(f,
		"\n"
		"Options:\n"
		"  -s, --socket PATH   daemon socket (default $VLUD_SOCKET, else %s)\n"
		"  -j, --json          print the raw JSON return (errors as {\"error\":{...}})\n"
		"  -t, --timeout MS    per-request timeout in ms (default %d; <0 none)\n"
		"  -h, --help          this text\n"
		"\n"
		"Exit status: 0 ok, 1 error reply from the daemon (update start: the update failed,\n"
		"was rolled back or refused), 2 usage error, 3 cannot connect (or connection lost),\n"
		"4 timeout.\n",
		VLU_DEFAULT_SOCKET, VLU_DEFAULT_TIMEOUT_MS);
}

static int verb_help(int argc, char **argv)
{
	usage(stdout);
	help_commands();
	return EXIT_OK;
}

/* Run the verb argv[0] of table (the sub-verbs of group, or the top level when group is NULL). */
static int dispatch(const struct verb *table, const char *group, int argc, char **argv)
{
	const struct verb *v = argc > 0 ? verb_find(table, argv[0]) : NULL;

	if (!v) {
		if (group)
			return verb_usage(group, NULL);
		fprintf(stderr, "vluctl: unknown command: %s (see vluctl --help)\n", argv[0]);
		return EXIT_USAGE;
	}
	if ((unsigned)argc < v->min_args || (v->max_args != VERB_ANY && (unsigned)argc > v->max_args))
		return verb_usage(group, v->name);
	if (v->sub)
		return dispatch(v->sub, v->name, argc - 1, argv + 1);
	return v->run(argc, argv);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	int c;

	while ((c = getopt_long(argc, argv, "+s:jt:h", opts, NULL)) >= 0) {
		switch (c) {
		case 's':
			arg_socket = optarg;
			break;
		case 'j':
			arg_json = true;
			break;
		case 't':
			if (parse_timeout(optarg) < 0)
				return EXIT_USAGE;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	return dispatch(verbs, NULL, argc - optind, argv + optind);
}
