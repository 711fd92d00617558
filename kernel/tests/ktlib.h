/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ktlib.h - helpers of the guest kernel tests (kernel/tests/): TAP output, a vhost-vdpa net device
 * (vdpa_sim_net) driven from user space with split virtqueues in a guest-RAM memfd, IOTLB messages,
 * VmPin, state handed across exec() and fds across SCM_RIGHTS.
 *
 * Layout of the guest RAM (memfd of KT_RAM bytes, device address KT_IOVA + offset):
 *   rings of queue q at q * 64 KiB (desc, avail +4 KiB, used +8 KiB), buffers of queue q at
 *   1 MiB + q * 1 MiB (256 slots of 2 KiB).  Queue 0 = RX, 1 = TX.
 */
#ifndef KTLIB_H
#define KTLIB_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "vlud-vhost.h"

#define KT_MiB		(1024ULL * 1024)
#define KT_RAM		(16 * KT_MiB)
#define KT_IOVA		0x100000000ULL
#define KT_QSZ		256
#define KT_BUFSZ	2048
#define KT_TIMEOUT_MS	5000

/* One device as a VMM drives it.  Every fd is owned by the struct (-EBADF when absent). */
struct kt_dev {
	int vfd;		/* vhost-vdpa fd */
	int memfd;		/* guest RAM */
	int kick[2], call[2];	/* eventfds of q0 (RX) and q1 (TX) */
	uint8_t *mem;		/* our mapping of memfd, KT_RAM bytes */
	uint64_t bf;		/* backend features offered (and acked) */
	/* driver-side ring state: carried across exec/handoff */
	uint16_t rx_avail, tx_avail, rx_used_seen, tx_used_seen;
	uint32_t seq;		/* next payload number */
};

/* What an image hands to its successor (written into a memfd that survives exec). */
struct kt_state {
	uint32_t magic;
	int vfd, memfd, kick[2], call[2];
	uint64_t old_addr;	/* where the predecessor mapped memfd */
	uint64_t bf;
	uint16_t rx_avail, tx_avail, rx_used_seen, tx_used_seen;
	uint32_t seq;
	long pin_kb;		/* VmPin of the predecessor while it owned the device */
	uint32_t pending;	/* packets posted and kicked while suspended, not yet completed */
	int use_va;
};
#define KT_STATE_MAGIC 0x6b747374

/* ---- TAP ---- */
void kt_init(const char *suite);
/* Prints "ok - SUITE/NAME" or "not ok - SUITE/NAME: why"; returns cond. */
bool kt_check(bool cond, const char *name, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Asserts r == 0 (want_errno 0) or r == -1 with errno == want_errno.  errno of the call: pass it. */
bool kt_errno(long r, int err, int want_errno, const char *name);
int kt_failures(void);
void kt_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *kt_errname(int e);

/* ---- process ---- */
long kt_vmpin_kb(pid_t pid);			/* VmPin of pid (0 = self) in kB, -1 if unknown */
int kt_raise_memlock(uint64_t bytes);
int kt_module_use_va(void);			/* /sys/module/vdpa_sim/parameters/use_va: 0, 1, -1 */

/* ---- device ---- */
void kt_dev_init(struct kt_dev *d);
void kt_dev_close(struct kt_dev *d);		/* closes everything it owns */
/* open DEV, SET_OWNER, ack every offered backend feature, create memfd + eventfds, map the memfd */
int kt_dev_open(struct kt_dev *d, const char *path);
/* map memfd into this process; avoid = an address not to use (0: any) */
int kt_map_ram(struct kt_dev *d, uint64_t avoid);
long kt_iotlb(int vfd, uint8_t type, uint64_t iova, uint64_t size, uint64_t uaddr, uint8_t perm);
/* IOTLB_UPDATE the whole RAM (batched when offered); returns 0 or -errno */
int kt_map_iotlb(struct kt_dev *d);
/* features, rings, eventfds, enable, DRIVER_OK; ring indices start at the values in d */
int kt_dev_start(struct kt_dev *d, bool fresh_rings);
/* post one RX buffer and one TX frame carrying d->seq (incremented) */
void kt_post(struct kt_dev *d);
int kt_kick(struct kt_dev *d);
/* wait for n RX completions (in order), compare each with its TX frame; 0 or -1 with why */
int kt_wait_rx(struct kt_dev *d, unsigned n, int timeout_ms, char *why, size_t whylen);
/* post + kick + wait for one packet */
int kt_packet(struct kt_dev *d, char *why, size_t whylen);
uint16_t kt_rx_used_idx(struct kt_dev *d);
int kt_status(int vfd, uint8_t *st);

/* ---- handover ---- */
int kt_state_save(const struct kt_dev *d, struct kt_state *s);	/* returns a memfd (no CLOEXEC) */
int kt_state_load(int fd, struct kt_state *s);
void kt_dev_from_state(struct kt_dev *d, const struct kt_state *s);
/* clear CLOEXEC on the device's fds and statefd, then exec /proc/self/exe CMD --stage2 STATEFD */
int kt_exec_self(const struct kt_dev *d, int statefd, const char *cmd);
int kt_send_fds(int sock, const void *data, size_t len, const int *fds, unsigned nfds);
int kt_recv_fds(int sock, void *data, size_t len, int *fds, unsigned nfds);

#endif /* KTLIB_H */
