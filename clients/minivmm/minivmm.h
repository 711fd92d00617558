/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * minivmm.h - internal interfaces of the reference VMM (not installed).
 *
 * Modules:
 *   mem.c      guest RAM (one memfd, MAP_SHARED), fixed layout, mapping table
 *   vdev.c     the vhost-vdpa device: features, owner, IOTLB (batched), vrings, status
 *   vq.c       split-virtqueue driver side: descriptors, avail/used, in-order reaping
 *   traffic.c  loopback frames with sequence numbers, counters, gaps
 *   cvq.c      the control virtqueue: commands, the CVQ-first start (control state before data queues)
 *   state.c    the versioned state blob that crosses an update (pure code, unit-tested)
 *   update.c   the VMM side of live-update paths A, B, C (exec mode)
 *   main.c     options, event loop, report
 *
 * Errors: functions return >= 0 on success, a negative errno on failure.
 * Output: only main.c and update.c print (to stderr, via mv_log); the report goes to stdout.
 */
#ifndef MINIVMM_H
#define MINIVMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/virtio_ring.h>

#include "basics.h"
#include "vlud-vhost.h"

/* ------------------------------------------------------------------ layout */
/* Device-visible address of guest RAM offset 0 (above 4 GiB, as a real VMM's high RAM would be). */
#define MV_IOVA_BASE		0x100000000ULL
#define MV_QSZ			256		/* vring size (vdpa_sim max is 256) */
#define MV_NQ			2		/* data queues used: 0 = RX, 1 = TX */
#define MV_HOLD_FOR_VLUD_S	30		/* a new image holds its datapath at most this long for a gone vlud */
#define MV_RXQ			0
#define MV_TXQ			1
#define MV_CVQ			2		/* the control virtqueue (no MQ: index 2 * 1 pair), cvq.c */
#define MV_RING_OFF(q)		((uint64_t)(q) * 0x10000)	/* 64 KiB per queue from offset 0 */
#define MV_DESC_OFF		0x0
#define MV_AVAIL_OFF		0x1000
#define MV_USED_OFF		0x2000
/* The drive mark: a 64-bit word in guest RAM (queue 0's ring area, after its used ring) that every process
 * writes a fresh random value into before it first drives the rings (reaps or sends; an RX refill alone
 * does not count, main.c) after a start, a takeover or a take-back; a saved state records it.  A process about to drive from a saved state finds
 * in it whether anybody drove the rings since the save (mv_update_rings_undriven) */
#define MV_DRIVE_MARK_OFF	0x3000
#define MV_BUF_OFF(q)		(0x100000ULL + (uint64_t)(q) * 0x100000)	/* 1 MiB of buffers per queue */
#define MV_BUFSZ		2048		/* one buffer per descriptor id */
#define MV_MIN_MEM		(4ULL << 20)	/* rings + buffers need 3 MiB */
#define MV_MAX_MAPS		64

/* Frame: virtio_net_hdr_v1 (12 bytes) + Ethernet header + payload (see traffic.c). */
#define MV_NET_HDR_LEN		12
#define MV_ETH_HLEN		14
#define MV_FRAME_MIN		60
#define MV_FRAME_MAX		1514
#define MV_ETHERTYPE		0x88b5		/* IEEE local experimental */

/* ------------------------------------------------------------------ misc */
uint64_t mv_now_us(void);			/* CLOCK_MONOTONIC: continuous across exec */
/* this image's start: main() entered, and (daemon-driven) connected to vlud and claim answered; copied into
 * the update record by mv_update_takeover() */
extern uint64_t mv_t_main_us, mv_t_connected_us, mv_t_claimed_us, mv_t_claim_sent_us, mv_t_claim_reply_us;
void mv_log(const char *fmt, ...) _printf_(1, 2);
extern bool mv_verbose;
#define mv_debug(...) do { if (mv_verbose) mv_log(__VA_ARGS__); } while (0)
int mv_vmpin_kb(long *ret_pin, long *ret_lck);	/* from /proc/self/status */
int mv_parse_size(const char *s, uint64_t *ret);	/* "256M", "1G", "4096" */

/* ------------------------------------------------------------------ mem.c */
struct mv_map {
	uint64_t iova;
	uint64_t size;
	uint64_t offset;	/* into the guest-RAM memfd */
	uint8_t perm;		/* VHOST_ACCESS_* */
};

struct mv_mem {
	int fd;			/* owned: guest-RAM memfd (CLOEXEC except across an exec update) */
	uint64_t size;
	uint8_t *base;		/* MAP_SHARED mapping of the whole memfd in this image */
	unsigned nmaps;
	struct mv_map maps[MV_MAX_MAPS];
	bool test_map_short;	/* test knob MINIVMM_TEST_MAP_SHORT, new image only (mem.c, vdev.c) */
	bool hugetlb;		/* the memfd is hugetlbfs (2 MiB pages): --hugetlb, or found so on attach */
};

#define MV_HUGE_PAGE ((uint64_t)2 << 20)

void mv_mem_init(struct mv_mem *m);
int mv_mem_create(struct mv_mem *m, uint64_t size, uint64_t chunk, bool prefault, bool hugetlb);	/* memfd + map table */
long mv_mem_huge_avail(void);	/* free, unreserved 2 MiB hugepages, or -errno */
uint64_t mv_mem_huge_round(uint64_t size);
int mv_mem_drop_ptes(struct mv_mem *m);	/* zap this image's page tables of guest RAM (pages stay) */
int mv_mem_attach(struct mv_mem *m, int fd, uint64_t size);		/* takes fd; mmap only */
void mv_mem_done(struct mv_mem *m);
void *mv_mem_ptr(const struct mv_mem *m, uint64_t iova, uint64_t len);	/* NULL if outside */
int mv_raise_memlock(uint64_t need, uint64_t *ret_limit);

/* ------------------------------------------------------------------ vdev.c */
struct mv_vdev {
	int fd;			/* owned: /dev/vhost-vdpa-N */
	char path[256];
	uint32_t device_id;
	uint32_t nvqs;
	uint16_t vring_max;
	uint64_t dev_features;		/* offered */
	uint64_t features;		/* acked (driver features) */
	uint64_t backend_offered;
	uint64_t backend_acked;
	uint8_t mac[6];
};

#define MV_BF(x) (1ULL << VHOST_BACKEND_F_##x)

void mv_vdev_init(struct mv_vdev *d);
int mv_vdev_open(struct mv_vdev *d, const char *path);		/* O_RDWR|O_CLOEXEC */
int mv_vdev_adopt(struct mv_vdev *d, int fd, const char *path);	/* takes fd */
void mv_vdev_done(struct mv_vdev *d);
int mv_vdev_query(struct mv_vdev *d);			/* any holder: features, vqs, vring max, config */
int mv_vdev_set_owner(struct mv_vdev *d);
int mv_vdev_new_owner(struct mv_vdev *d, uint64_t *ret_pages); /* v3, raises RLIMIT_MEMLOCK on ENOMEM */
int mv_vdev_arm(struct mv_vdev *d, int pidfd);			/* owner: consent to pidfd's take-over */
bool mv_vdev_new_owner_supported(struct mv_vdev *d);		/* our NEW_OWNER, by behaviour (owned device) */
int mv_vdev_ack_backend(struct mv_vdev *d, uint64_t want);	/* acks want & offered */
int mv_vdev_get_status(struct mv_vdev *d, uint8_t *ret);
int mv_vdev_set_status(struct mv_vdev *d, uint8_t st);
int mv_vdev_features_ok(struct mv_vdev *d, uint64_t want);	/* reset? no: ACK|DRIVER, FEATURES, FEATURES_OK */
int mv_vdev_driver_ok(struct mv_vdev *d);
int mv_vdev_suspend(struct mv_vdev *d);
int mv_vdev_resume(struct mv_vdev *d);
int mv_vdev_get_vring_base(struct mv_vdev *d, unsigned q, uint16_t *ret);
bool mv_vdev_other_owner(struct mv_vdev *d);
int mv_vdev_vring_setup(struct mv_vdev *d, unsigned q, uint16_t num, uint16_t base,
			uint64_t desc, uint64_t avail, uint64_t used, int kick, int call);
int mv_vdev_vring_enable(struct mv_vdev *d, unsigned q, bool on);
int mv_vdev_read_mac(struct mv_vdev *d, uint8_t ret[6]);	/* VHOST_VDPA_GET_CONFIG, offset 0 */
/* IOTLB: one BATCH_BEGIN ... BATCH_END sequence when BATCH is acked. */
int mv_vdev_map(struct mv_vdev *d, const struct mv_mem *m);
int mv_vdev_unmap(struct mv_vdev *d, const struct mv_mem *m);
int mv_vdev_remap(struct mv_vdev *d, const struct mv_mem *m);	/* VHOST_IOTLB_REMAP, perm 0 */
const char *mv_backend_names(uint64_t bits, char *buf, size_t len);

/* ------------------------------------------------------------------ vq.c */
struct mv_vq {
	unsigned idx;
	uint16_t num;
	uint64_t desc_iova, avail_iova, used_iova, buf_iova;
	struct vring_desc *desc;	/* pointers into guest RAM of this image */
	struct vring_avail *avail;
	struct vring_used *used;
	uint8_t *buf;
	uint16_t avail_idx;		/* next avail->idx the driver publishes (shadow) */
	uint16_t used_seen;		/* used->idx processed so far */
	uint8_t busy[MV_QSZ];		/* descriptor id owned by the device */
	int kick;			/* owned: eventfd (EFD_NONBLOCK) */
	int call;			/* owned: eventfd (EFD_NONBLOCK) */
};

void mv_vq_init(struct mv_vq *vq, unsigned idx);
int mv_vq_layout(struct mv_vq *vq, const struct mv_mem *m, bool clear);	/* pointers; clear = fresh rings */
int mv_vq_eventfds(struct mv_vq *vq);					/* new kick + call */
void mv_vq_done(struct mv_vq *vq);
unsigned mv_vq_inflight(const struct mv_vq *vq);
int mv_vq_free_id(const struct mv_vq *vq);		/* id to use next, -ENOBUFS if full */
uint8_t *mv_vq_buf(const struct mv_vq *vq, unsigned id);
void mv_vq_post(struct mv_vq *vq, unsigned id, uint32_t len, bool device_writes);
void mv_vq_publish(struct mv_vq *vq);			/* release-store avail->idx */
int mv_vq_kick(struct mv_vq *vq);
void mv_vq_drain_call(struct mv_vq *vq);
/* Next used element, or false when none is pending. */
bool mv_vq_reap(struct mv_vq *vq, uint32_t *ret_id, uint32_t *ret_len);

struct mv_vq_state;
void mv_vq_save(const struct mv_vq *vq, struct mv_vq_state *s);	/* keeps s->dev_base */
void mv_vq_restore(struct mv_vq *vq, const struct mv_vq_state *s);

/* ------------------------------------------------------------------ traffic.c */
#define MV_WIN			1024	/* window of recent sequence numbers (>= 4 * max in flight) */

struct mv_traffic {
	uint64_t next_seq;	/* next sequence number to send (first is 1) */
	uint64_t sent, echoed, lost, dup, corrupt, foreign, tx_full, rx_short;
	uint64_t last_echo_us;	/* time of the last good echo (0: none yet) */
	uint64_t max_gap_us;	/* largest gap between consecutive echoes */
	uint64_t max_gap_at_us;	/* when that gap ended */
	uint32_t frame_len;	/* Ethernet frame length (without the virtio header) */
	uint8_t dst_mac[6];	/* frames go there: broadcast without CVQ, else the CVQ-set MAC */
	uint32_t generation;	/* which image sends (0 = first, +1 per update) */
	uint64_t win_seq[MV_WIN];	/* seq sent in this slot (seq % MV_WIN), 0 = empty */
	uint8_t win_state[MV_WIN];	/* 0 empty, 1 in flight, 2 echoed */
};

enum { MV_ECHO_OK, MV_ECHO_DUP, MV_ECHO_CORRUPT, MV_ECHO_FOREIGN, MV_ECHO_UNKNOWN };

void mv_traffic_init(struct mv_traffic *t, uint32_t frame_len);
/* Writes the frame (virtio header + Ethernet) for the next sequence number into buf; returns length. */
uint32_t mv_traffic_build(struct mv_traffic *t, uint8_t *buf, size_t cap, uint64_t now_us);
int mv_traffic_check(struct mv_traffic *t, const uint8_t *buf, uint32_t len, uint64_t now_us);
uint64_t mv_traffic_inflight(const struct mv_traffic *t);
/* Counts every still-in-flight frame as lost (end of run, after the drain time). */
void mv_traffic_finish(struct mv_traffic *t);

/* ------------------------------------------------------------------ state.c */
#define MV_STATE_MAGIC		0x53564d4du	/* "MMVS" little-endian */
#define MV_STATE_VERSION	5		/* 2: control state (struct mv_ctrl), CVQ restore records; 3: new image's start times; 4: claim and ready times; 5: the drive mark */
#define MV_STATE_ENV		"MINIVMM_STATE_FD"

enum mv_path { MV_PATH_NONE = 0, MV_PATH_A = 'A', MV_PATH_B = 'B', MV_PATH_C = 'C' };

struct mv_vq_state {
	uint16_t num;
	uint16_t avail_idx;	/* driver shadow */
	uint16_t used_seen;	/* driver shadow */
	uint16_t dev_base;	/* VHOST_GET_VRING_BASE after suspend (last_avail_idx) */
	uint8_t busy[MV_QSZ];
	int32_t kick_fd, call_fd;	/* fd numbers valid in the exec'ed image */
};

struct mv_update_rec {		/* one finished update, as reported */
	uint8_t path;
	uint8_t ok;
	uint8_t va_mode;
	uint8_t pad;
	int32_t error;		/* negative errno if !ok */
	uint64_t t_start_us;	/* request accepted */
	uint64_t t_suspend_us;	/* SUSPEND returned */
	uint64_t t_exec_us;	/* just before execve */
	uint64_t t_image_us;	/* new image's main() */
	uint64_t t_owner_us;	/* NEW_OWNER / SET_OWNER done */
	uint64_t t_mapped_us;	/* remap or re-map done */
	uint64_t t_resume_us;	/* RESUME / DRIVER_OK done */
	uint64_t echo_gap_us;	/* gap between the last echo before and the first after */
	uint64_t inflight_at_suspend;	/* frames sent and not yet echoed when the device was suspended */
	uint64_t sent_in_pause;		/* frames posted while the device was suspended (queued in the ring) */
	int64_t vmpin_before_kb, vmpin_after_kb;	/* old image before exec, new image after resume */
	uint64_t lost_before, dup_before;	/* counters when the update started */
	/* control state restore (paths B, C with the CVQ negotiated; cvq.c) */
	uint8_t cvq_replayed;	/* 1: the new image replayed the control state CVQ-first */
	uint8_t mac_ok;		/* config-space MAC == the control state's MAC after the update (1), 0 no, 2 n/a */
	uint16_t cvq_cmds;	/* control commands replayed */
	uint16_t cvq_used_at_enable;	/* CVQ commands the device had used when the data queues were enabled */
	uint64_t cvq_restore_us;	/* CVQ enabled -> every command used (DRIVER_OK included) */
	/* v3: the new image's start (0 when not measured) */
	uint64_t t_main_us;		/* new image's main() entered */
	uint64_t t_connected_us;	/* daemon-driven: connected to vlud (greeting and negotiation done) */
	uint64_t t_claimed_us;		/* daemon-driven: update.claim answered (fds received) */
	/* v4, daemon-driven (0 when not measured): the claim's request sent and its reply read off the
	 * socket (libvlu's vlu_call_times()), update.ready sent and the verdict read */
	uint64_t t_claim_sent_us, t_claim_reply_us, t_ready_sent_us, t_verdict_us;
};

/* The device's control state as the driver set it through the CVQ: what a reset loses and a B/C
 * successor replays before any data flows. */
struct mv_ctrl {
	uint8_t cvq;		/* VIRTIO_NET_F_CTRL_VQ negotiated */
	uint8_t mac_set;	/* VIRTIO_NET_CTRL_MAC_ADDR_SET issued (needs CTRL_MAC_ADDR) */
	uint8_t mac[6];
	uint8_t cvq_first;	/* data queues enabled after DRIVER_OK (ENABLE_AFTER_DRIVER_OK acked) */
};

#define MV_MAX_UPDATES 32

struct mv_state {
	/* what the new image needs to take over */
	uint8_t path;			/* enum mv_path in progress */
	uint32_t generation;		/* images so far (0 = first) */
	int32_t dev_fd;			/* -1 for path C (closed by exec) */
	int32_t mem_fd;
	char dev_path[256];
	uint64_t mem_size;
	uint64_t features;		/* driver features acked */
	uint64_t backend_acked;
	uint64_t backend_offered;
	uint8_t status;			/* device status before suspend */
	uint32_t nmaps;
	struct mv_map maps[MV_MAX_MAPS];
	uint64_t old_uaddr;		/* informational: old image's mapping address */
	uint64_t drive_mark;		/* the drive mark in guest RAM when the state was saved */
	struct mv_vq_state vq[MV_NQ];
	struct mv_ctrl ctrl;
	/* run bookkeeping */
	uint64_t t_run_start_us, t_deadline_us, t_next_update_us;
	uint32_t updates_left;
	int64_t vmpin_expected_kb;	/* VmPin added by the initial map (PA mode: guest RAM) */
	struct mv_traffic traffic;
	uint32_t nupdates;
	struct mv_update_rec upd[MV_MAX_UPDATES];
};

/* Serialize into a freshly allocated buffer; *ret_len set. */
int mv_state_pack(const struct mv_state *s, uint8_t **ret_buf, size_t *ret_len);
/* Parse and validate (magic, version, length, checksum, ranges). */
int mv_state_unpack(const uint8_t *buf, size_t len, struct mv_state *ret);
/* A memfd (without CLOEXEC: it crosses exec) holding the packed state. */
int mv_state_to_memfd(const struct mv_state *s);
/* Reads and validates; does not close fd. */
int mv_state_from_fd(int fd, struct mv_state *ret);
uint32_t mv_crc32(const void *buf, size_t len);

/* ------------------------------------------------------------------ the VMM (main.c, update.c) */
struct mv_opts {
	const char *device;		/* --device PATH (standalone) */
	const char *vlud, *instance, *vdpa;	/* --vlud SOCKET --instance NAME --vdpa NAME */
	uint64_t mem_size, chunk;
	unsigned rate;			/* frames per second */
	uint32_t frame_len;
	double duration_s;		/* 0: until SIGINT/SIGTERM */
	double update_after_s;		/* < 0: no timed update */
	unsigned updates;
	char path;			/* 0 = auto, 'A', 'B', 'C' */
	const char *exec_path;		/* image to exec on update */
	unsigned drain_ms;
	unsigned max_inflight;
	unsigned pause_frames;		/* frames to post while suspended (--pause-frames) */
	uint16_t ring_base;		/* initial vring index (--ring-base) */
	bool json;
	const char *report;		/* --report FILE: the report goes there, not to stdout */
	bool check_vmpin;
	bool prefault;			/* guest RAM mapped in full (default) or lazily (--no-prefault) */
	bool hugetlb;			/* guest RAM in 2 MiB hugetlb pages (--hugetlb; size rounded up to 2 MiB) */
	bool cvq;			/* negotiate the CVQ and set the MAC through it (default; --no-cvq) */
	uint8_t mac[6];			/* --mac: the MAC set through the CVQ */
	bool test_no_cvq_restore;	/* --test-no-cvq-restore (a transfer successor gets no environment) */
	const char *test_declare_changes;	/* --test-declare-changes: update.ready's device_state_changes */
	const char *edu;		/* --edu CDEV: QEMU's edu on VFIO/iommufd too (edu.c; needs --vlud) */
	bool edu_acct_mm;		/* --edu-acct mm: its iommufd in mm accounting mode (RLIMIT_MODE 1) */
	bool test_edu_die_after_move;	/* --test-edu-die-after-move: a successor exits after CHANGE_PROCESS */
	bool test_edu_final_check;	/* --test-edu-final-check: one more edu DMA check at the end of the run */
	char **argv;			/* for the exec */
};

struct vlu;
struct json_object;

/* ------------------------------------------------------------------ edu.c */
#define MV_EDU_WINDOW		(1u << 20)	/* the last MiB of guest RAM, edu's DMA window */
#define MV_EDU_IOVA		((uint64_t)0x100000)	/* its IOVA (edu's addresses are 28 bits) */
#define MV_EDU_IOMMUFD		"iommufd:iommu"	/* vlud's name of the held /dev/iommu fd */

struct mv_edu {
	int iommufd, devfd;		/* owned: from vlud (device.open, or the claim) */
	uint32_t ioas;
	volatile uint8_t *bar;		/* BAR0, mmapped */
	char dev_name[80];		/* vlud's name of the held VFIO fd ("vfio:vfioN") */
	unsigned checks, ok, kept, fails, moves;	/* DMA checks, passed, the previous copy found, failures,
							 * CHANGE_PROCESS calls */
	int last_error;
	long vmpin_before_kb, vmpin_after_kb;	/* around the last CHANGE_PROCESS (the first image: MAP_FILE) */
	uint64_t cp_us;
};

struct mv_vmm;
void mv_edu_init(struct mv_edu *e);
void mv_edu_done(struct mv_edu *e);
void mv_edu_name(struct mv_edu *e, const char *cdev);
int mv_edu_drop_ipc_lock(void);
int mv_edu_open(struct mv_vmm *v);
/* DMA check of image generation gen (check_gen >= 0: that generation's copy is still there first) */
int mv_edu_check(struct mv_vmm *v, int64_t check_gen, uint32_t gen, const char *what);
struct json_object *mv_edu_ioas_json(const struct mv_vmm *v);
/* io: the claim's (or update.rolled-back's) "iommufd", NULL for our own; CHANGE_PROCESS, the DMA check, *moved the names */
int mv_edu_take(struct mv_vmm *v, struct json_object *io, int64_t check_gen, uint32_t gen, const char *what,
		struct json_object **moved);

struct mv_vmm {
	struct mv_opts o;
	struct vlu *link;		/* owned: connection to vlud (--vlud), NULL standalone */
	char dev_fd_name[80];		/* the daemon's name of the held device fd ("vdpa:NAME") */
	unsigned link_stored;		/* fds stored with the daemon */
	bool link_mappings_ok;
	int link_mappings_error;
	int link_reattach_error;
	unsigned link_reattaches;	/* reattached to a restarted vlud (mv_vlud_tick) */
	int superseded_by;		/* pid that runs the instance now: this process stopped (mv_vlud_tick) */
	struct mv_mem mem;
	struct mv_vdev dev;
	struct mv_vq vq[MV_NQ];
	struct mv_vq cvq;		/* this image's CVQ (its eventfds are CLOEXEC: never cross an update) */
	bool test_no_cvq_restore;	/* test knob MINIVMM_TEST_NO_CVQ_RESTORE=1: B/C successor skips the replay */
	struct mv_state *st;		/* persistent bookkeeping (traffic, update records); heap */
	int sigfd;			/* owned: signalfd for INT, TERM, USR1 */
	bool update_requested;
	bool stop;
	bool va_mode;
	int64_t vmpin_idle_kb;		/* VmPin read outside a pause (after the set-up, after the last
					 * update's pause): a daemon-driven update's "before" (the device is
					 * suspended by vlud already when update.save comes); -1 unknown */
	uint64_t next_send_us;
	int await_echo_upd;		/* index of the update whose first echo is awaited, -1 none */
	bool suspended;			/* old image: the device is suspended for an update */
	bool drive_marked;		/* this process wrote the drive mark since it last stopped driving */
	bool was_reset;			/* old image: path B reset done (rollback re-creates the vrings) */
	bool reopened;			/* old image: path C rollback, vlud reopened the device for us (retake it) */
	uint64_t held_until_us;		/* new image, vlud gone at update.ready: no datapath until it is back
					 * and gives us the instance, or until this time (vlud.c) */
	struct mv_edu edu;		/* --edu (edu.c) */
};

/* main.c: datapath helpers also used by update.c */
int mv_dp_refill_rx(struct mv_vmm *v);
unsigned mv_dp_send_now(struct mv_vmm *v, unsigned n);	/* post up to n frames, ignoring the rate */
void mv_dp_reap(struct mv_vmm *v, uint64_t now);

/* link.c: vlud through libvlu */
int mv_link_open_device(struct mv_vmm *v);	/* connect, register, device.open */
int mv_link_store(struct mv_vmm *v);		/* fd.store memfd + eventfds, vmm.mappings */
int mv_link_reattach(struct mv_vmm *v);	/* new image: connect, register with reattach */
int mv_link_owner(struct mv_vmm *v);	/* pid the instance is attached to (instance.list), 0 orphaned, <0 */
int mv_link_fd(struct mv_vmm *v);
int mv_link_process(struct mv_vmm *v);
void mv_link_close(struct mv_vmm *v);

/* cvq.c */
/* Brings the device from FEATURES_OK to running with the control state of v->st->ctrl applied first:
 * data vrings set up with bases (not enabled if CVQ-first), CVQ set up and enabled, DRIVER_OK, every
 * control command posted and waited for, then the data queues enabled.  replay false (path A never gets
 * here; test knob): DRIVER_OK and the data queues without control commands.  u (may be NULL) gets the
 * CVQ figures. */
int mv_cvq_start_device(struct mv_vmm *v, const uint16_t *bases, bool replay, struct mv_update_rec *u);
/* The config-space MAC equals the control state's (1), differs (0), or there is none to compare (2). */
int mv_cvq_mac_check(struct mv_vmm *v);
const char *mv_mac_str(const uint8_t *mac, char buf[18]);

/* update.c */
char mv_choose_path(uint64_t backend_offered, char forced, const char **ret_reason);
int mv_bringup(struct mv_vmm *v);		/* first image: open, own, map, vrings, DRIVER_OK */
/* Standalone exec mode: the whole old side (choose, quiesce, exec; rollback on failure) ... */
int mv_update_start(struct mv_vmm *v);		/* returns only on failure, after rollback */
/* ... and the whole new side (read the state memfd named by $MINIVMM_STATE_FD, take over). */
int mv_update_finish(struct mv_vmm *v, int state_fd);
/* The steps, for a daemon-driven update (docs/UPDATE.md); flags say what vlud does instead of the VMM.
 * The caller of mv_update_quiesce() has set up st->upd[st->nupdates] (mv_update_rec_begin(), path). */
#define MV_UPD_DAEMON_SUSPENDS	0x1	/* vlud suspended the device before update.save */
#define MV_UPD_DAEMON_RESETS	0x2	/* path B: vlud does SET_STATUS 0 after update.saved */
#define MV_UPD_DAEMON_RESUMES	0x4	/* path A: vlud RESUMEs after update.ready */
#define MV_UPD_CHECKS_LATER	0x8	/* takeover: the VMM's own after-checks (MAC, VmPin, log line) are left to
					 * mv_update_after_pause(), called after update.ready: vlud's pause ends
					 * there (its RESUME on A), not at the takeover */
/* Clears st->upd[st->nupdates] (the caller checked nupdates < MV_MAX_UPDATES) and records the start:
 * time, lost/dup counters, VA mode.  The caller sets ->path. */
struct mv_update_rec *mv_update_rec_begin(struct mv_vmm *v);
int mv_update_quiesce(struct mv_vmm *v, char path, unsigned flags);	/* old: [SUSPEND], bases, state */
int mv_update_exec(struct mv_vmm *v, char path);	/* old: exec with fds + state; returns on failure */
void mv_exec_defer_teardown(struct mv_vmm *v, char path);	/* old, before execve: teardown after the pause */
void mv_exec_undo_defer(struct mv_vmm *v, char path);	/* old, the execve failed */
int mv_update_rollback(struct mv_vmm *v);		/* old: RESUME or re-create the vrings */
int mv_update_takeover(struct mv_vmm *v, unsigned flags);	/* new: st loaded, its fds valid here */
void mv_update_after_pause(struct mv_vmm *v);	/* new, MV_UPD_CHECKS_LATER: MAC, VmPin, the log line */
/* -ESTALE when another process drove the rings after st was saved: st must not drive them; 1 when only the
 * device ran on (st takes its vring bases), 0 when nothing moved */
int mv_update_rings_undriven(struct mv_vmm *v, struct mv_state *st, const char *who);
void mv_drive_mark(struct mv_vmm *v);	/* before driving the rings: a fresh drive mark if none yet */
uint64_t mv_drive_mark_read(const struct mv_vmm *v);

#endif /* MINIVMM_H */
