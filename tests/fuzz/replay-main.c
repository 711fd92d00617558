/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * replay-main.c - run LLVMFuzzerTestOneInput once on every file named on
 * the command line (directories: every regular file inside, sorted), printing
 * one TAP line per file.  For builds without libFuzzer (gcc, SANITIZE=1).
 * A crash aborts the program (non-zero exit, no summary); the last
 * "# replaying" line names the culprit.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned n_ok, n_fail;

static void replay_file(const char *path)
{
	FILE *f = fopen(path, "re");
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0, n;

	if (!f) {
		printf("not ok - fuzz/replay/%s: cannot open: %s\n", path, strerror(errno));
		n_fail++;
		return;
	}
	for (;;) {
		if (len == cap) {
			cap = cap ? cap * 2 : 4096;
			buf = realloc(buf, cap);
			if (!buf)
				abort();
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
	}
	fclose(f);
	printf("# replaying %s (%zu bytes)\n", path, len);
	fflush(stdout);
	LLVMFuzzerTestOneInput(buf, len);
	free(buf);
	printf("ok - fuzz/replay/%s\n", strrchr(path, '/') ? strrchr(path, '/') + 1 : path);
	n_ok++;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) < 0) {
			printf("not ok - fuzz/replay/%s: %s\n", argv[i], strerror(errno));
			n_fail++;
			continue;
		}
		if (!S_ISDIR(st.st_mode)) {
			replay_file(argv[i]);
			continue;
		}
		struct dirent **ents = NULL;
		int n = scandir(argv[i], &ents, NULL, alphasort);
		if (n < 0) {
			printf("not ok - fuzz/replay/%s: %s\n", argv[i], strerror(errno));
			n_fail++;
			continue;
		}
		for (int k = 0; k < n; k++) {
			char path[4096];
			struct stat fst;
			snprintf(path, sizeof(path), "%s/%s", argv[i], ents[k]->d_name);
			if (ents[k]->d_name[0] != '.' && stat(path, &fst) == 0 && S_ISREG(fst.st_mode))
				replay_file(path);
			free(ents[k]);
		}
		free(ents);
	}
	if (n_ok + n_fail == 0) {
		printf("not ok - fuzz/replay: no corpus files found\n");
		return 1;
	}
	printf("# %u corpus files replayed\n", n_ok);
	return n_fail ? 1 : 0;
}
