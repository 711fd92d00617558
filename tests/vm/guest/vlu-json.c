/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vlu-json - the rig scenarios' JSON reader (the guest has busybox, no jq): prints the values at a path of
 * the JSON documents of a file, parsed with json-c (docs/RIG.md, tests/vm/scenarios/lib/tap.sh `jget`).
 *
 * Usage: vlu-json [-s] PATH [FILE]          (FILE default: standard input)
 *
 * FILE holds one or more JSON documents (vluctl --json output, one event per line, ...); PATH is applied to
 * each of them, or with -s to one array of all of them (jq's --slurp).  PATH is a sequence of steps:
 *   .NAME        member NAME of an object
 *   [N]          element N of an array
 *   []           every element of an array
 *   [KEY=VALUE]  every element of an array that is an object whose member KEY prints as VALUE
 *   .            (alone) the document itself
 * e.g. `.return.vmpin.moved_ok`, `.instances[name=vm0].state`, `.fds[].name`.  Each value found is printed
 * on its own line: a string as it is (no quotes, no escapes), anything else as compact JSON (`true`, `null`,
 * `12.5`, `{"a":1}`).  Exit 0 when at least one value was found, 1 when none, 2 on a usage error, an
 * unreadable file or text that is not JSON (nothing is printed then).  A document cut off by the end of the
 * text (the last line of a file still being written) is left out, with a message on stderr.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <json-c/json.h>

#define MAX_INPUT (64u << 20)

static const char *text_of(json_object *o)
{
	if (json_object_is_type(o, json_type_string))
		return json_object_get_string(o);
	return json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

/* the step at *path: its kind and argument; returns the rest of the path, NULL on a malformed step */
enum step { STEP_END, STEP_MEMBER, STEP_INDEX, STEP_EACH, STEP_SELECT };

static const char *next_step(const char *path, enum step *kind, char *arg, size_t argsz)
{
	size_t n;

	if (*path == '\0') {
		*kind = STEP_END;
		return path;
	}
	if (*path == '.') {
		n = strcspn(path + 1, ".[");
		if (n == 0 || n >= argsz)
			return path[1] == '\0' ? (*kind = STEP_END, path + 1) : NULL;
		memcpy(arg, path + 1, n);
		arg[n] = '\0';
		*kind = STEP_MEMBER;
		return path + 1 + n;
	}
	if (*path == '[') {
		const char *end = strchr(path, ']');

		if (!end)
			return NULL;
		n = (size_t)(end - path - 1);
		if (n >= argsz)
			return NULL;
		memcpy(arg, path + 1, n);
		arg[n] = '\0';
		if (n == 0)
			*kind = STEP_EACH;
		else if (strchr(arg, '='))
			*kind = STEP_SELECT;
		else if (strspn(arg, "0123456789") == n)
			*kind = STEP_INDEX;
		else
			return NULL;
		return end + 1;
	}
	return NULL;
}

/* prints every value at PATH under O; returns how many, -1 on a malformed path */
static int walk(json_object *o, const char *path)
{
	char arg[256];
	enum step kind;
	const char *rest = next_step(path, &kind, arg, sizeof(arg));
	json_object *m;
	int found = 0;

	if (!rest)
		return -1;
	switch (kind) {
	case STEP_END:
		puts(text_of(o));
		return 1;
	case STEP_MEMBER:
		if (!json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, arg, &m))
			return 0;
		return walk(m, rest);
	case STEP_INDEX:
		if (!json_object_is_type(o, json_type_array) ||
		    strtoul(arg, NULL, 10) >= json_object_array_length(o))
			return 0;
		return walk(json_object_array_get_idx(o, strtoul(arg, NULL, 10)), rest);
	case STEP_EACH:
	case STEP_SELECT: {
		char *value = kind == STEP_SELECT ? strchr(arg, '=') : NULL;

		if (value)
			*value++ = '\0';
		if (!json_object_is_type(o, json_type_array))
			return 0;
		for (size_t i = 0; i < json_object_array_length(o); i++) {
			json_object *e = json_object_array_get_idx(o, i);
			int r;

			if (value && (!json_object_is_type(e, json_type_object) ||
				      !json_object_object_get_ex(e, arg, &m) || strcmp(text_of(m), value) != 0))
				continue;
			r = walk(e, rest);
			if (r < 0)
				return r;
			found += r;
		}
		return found;
	}
	}
	return -1;
}

static char *read_all(FILE *f, size_t *ret_len)
{
	size_t len = 0, cap = 65536;
	char *buf = malloc(cap + 1);

	if (!buf)
		return NULL;
	for (;;) {
		size_t n = fread(buf + len, 1, cap - len, f);

		len += n;
		if (len < cap) {
			if (ferror(f)) {
				free(buf);
				return NULL;
			}
			break;
		}
		if (cap >= MAX_INPUT) {
			free(buf);
			errno = EFBIG;
			return NULL;
		}
		cap *= 2;
		char *nb = realloc(buf, cap + 1);

		if (!nb) {
			free(buf);
			return NULL;
		}
		buf = nb;
	}
	buf[len] = '\0';
	*ret_len = len;
	return buf;
}

int main(int argc, char **argv)
{
	bool slurp = false;
	const char *path, *file = NULL;
	json_object *docs = NULL;
	json_tokener *tok = NULL;
	FILE *f = stdin;
	char *buf = NULL;
	size_t len = 0, off = 0;
	int opt, found, ret = 2;

	while ((opt = getopt(argc, argv, "s")) != -1) {
		if (opt != 's')
			goto usage;
		slurp = true;
	}
	if (argc - optind < 1 || argc - optind > 2)
		goto usage;
	path = argv[optind];
	if (path[0] != '.' && path[0] != '[')
		goto usage;
	if (argc - optind == 2) {
		file = argv[optind + 1];
		f = fopen(file, "re");
		if (!f) {
			fprintf(stderr, "vlu-json: %s: %s\n", file, strerror(errno));
			return 2;
		}
	}
	buf = read_all(f, &len);
	if (f != stdin)
		fclose(f);
	if (!buf) {
		fprintf(stderr, "vlu-json: %s: %s\n", file ? file : "stdin", strerror(errno));
		return 2;
	}
	/* every document first (nothing is printed from a file that is not all JSON) */
	docs = json_object_new_array();
	tok = json_tokener_new_ex(64);
	if (!docs || !tok)
		goto out;
	for (;;) {
		json_object *d;

		off += strspn(buf + off, " \t\r\n");
		if (off >= len)
			break;
		json_tokener_reset(tok);
		d = json_tokener_parse_ex(tok, buf + off, (int)(len - off));
		if (!d && json_tokener_get_error(tok) == json_tokener_continue) {
			/* the text ends inside a document: the last line of a file still being written (vluctl
			 * events --follow); what came before is complete */
			fprintf(stderr, "vlu-json: %s: incomplete document at offset %zu left out\n", file ? file : "stdin",
				off);
			break;
		}
		if (!d) {
			fprintf(stderr, "vlu-json: %s: not JSON at offset %zu: %s\n", file ? file : "stdin", off,
				json_tokener_error_desc(json_tokener_get_error(tok)));
			goto out;
		}
		json_object_array_add(docs, d);
		off += json_tokener_get_parse_end(tok);
	}
	if (json_object_array_length(docs) == 0) {
		fprintf(stderr, "vlu-json: %s: no JSON document\n", file ? file : "stdin");
		goto out;
	}
	if (slurp) {
		found = walk(docs, path);
	} else {
		found = 0;
		for (size_t i = 0; i < json_object_array_length(docs) && found >= 0; i++) {
			int r = walk(json_object_array_get_idx(docs, i), path);

			found = r < 0 ? r : found + r;
		}
	}
	if (found < 0) {
		fprintf(stderr, "vlu-json: malformed path '%s'\n", path);
		goto out;
	}
	ret = found > 0 ? 0 : 1;
out:
	json_tokener_free(tok);
	json_object_put(docs);
	free(buf);
	return ret;
usage:
	fprintf(stderr, "usage: vlu-json [-s] PATH [FILE]   (PATH e.g. .return.vmpin.moved_ok, .instances[name=vm0].state, .fds[].name)\n");
	return 2;
}
