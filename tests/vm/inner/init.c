/* tests/vm/inner/init.c - PID 1 of the inner guest (docs/QEMU.md "A tiny inner kernel instead of qtest").
 *
 * Built static (gcc -static) and booted by the tiny kernel of tests/vm/inner/kernel.config under an
 * unmodified QEMU whose virtio-net-pci device sits on vhost-vdpa (vdpa_sim_net loops every TX frame back
 * to RX).  It prints, on the console:
 *   INNER-INIT uptime=<s>            as soon as it runs (the kernel's /proc/uptime)
 *   INNER-LINK ifindex=.. mac=.. uptime=<s>   eth0 up and running (IFF_RUNNING)
 *   INNER-RESULT frames=N received=N lost=N bad=N dup=N ooo=N ms=<traffic time> uptime=<s>
 *   INNER-TRAFFIC ok | INNER-TRAFFIC FAIL <why>
 * then restarts the machine (reboot(RB_AUTOBOOT); QEMU runs with -no-reboot, so it exits: the kernel has
 * no ACPI, so a power-off could only halt).  The traffic: `frames=N` (kernel command line; default 256)
 * sequence-numbered broadcast frames of ethertype 0x88b5 (local experimental) and varying length through an
 * AF_PACKET socket on eth0, in bursts of 16, each burst read back before the next: every frame must come
 * back once, in order, its length and payload intact.  `timeout=S` (default 60) bounds the wait for the
 * link and for each burst.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ETYPE 0x88b5
#define BURST 16
#define MAGIC "VLUI"
#define HDR 22 /* dst 6, src 6, type 2, magic 4, seq 4 */

static char uptime_buf[32];

static const char *uptime(void)
{
	int fd = open("/proc/uptime", O_RDONLY);
	ssize_t n = fd < 0 ? -1 : read(fd, uptime_buf, sizeof(uptime_buf) - 1);
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return "?";
	uptime_buf[n] = 0;
	uptime_buf[strcspn(uptime_buf, " \n")] = 0;
	return uptime_buf;
}

static void say(const char *fmt, ...)
{
	char b[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(b, sizeof(b) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof(b) - 2)
		n = sizeof(b) - 2;
	b[n++] = '\n';
	(void)!write(1, b, n);
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void end(void)
{
	sync();
	reboot(RB_AUTOBOOT);
	say("INNER-END reboot: %s", strerror(errno));
	for (;;)
		pause();
}

static __attribute__((noreturn)) void fail(const char *what)
{
	say("INNER-TRAFFIC FAIL %s: %s", what, strerror(errno));
	end();
	__builtin_unreachable();
}

static int frame_len(uint32_t seq) { return 60 + (int)((seq * 97u) % 1455u); } /* 60..1514 */
static uint8_t pattern(uint32_t seq, int i) { return (uint8_t)(seq * 7u + (unsigned)i); }

static int param(const char *name, int def)
{
	const char *v = getenv(name);
	return v && atoi(v) > 0 ? atoi(v) : def;
}

int main(void)
{
	if (getpid() != 1) {
		fprintf(stderr, "inner-init: not PID 1: this is the inner guest's init, not a program to run\n");
		return 2;
	}
	mkdir("/proc", 0555);
	mount("proc", "/proc", "proc", 0, NULL);
	say("INNER-INIT uptime=%s", uptime());

	int frames = param("frames", 256), timeout_s = param("timeout", 60);
	int s = socket(AF_PACKET, SOCK_RAW, htons(ETYPE));
	if (s < 0)
		fail("socket(AF_PACKET)");
	struct ifreq ifr = {0};
	strcpy(ifr.ifr_name, "eth0");
	if (ioctl(s, SIOCGIFINDEX, &ifr) < 0)
		fail("SIOCGIFINDEX eth0");
	int ifindex = ifr.ifr_ifindex;
	if (ioctl(s, SIOCGIFHWADDR, &ifr) < 0)
		fail("SIOCGIFHWADDR eth0");
	uint8_t mac[6];
	memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		fail("SIOCGIFFLAGS eth0");
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		fail("SIOCSIFFLAGS eth0 up");
	long long t0 = now_ms();
	for (;;) { /* the default qdisc is attached once the carrier is on */
		if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
			fail("SIOCGIFFLAGS eth0");
		if (ifr.ifr_flags & IFF_RUNNING)
			break;
		if (now_ms() - t0 > timeout_s * 1000LL) {
			errno = ETIMEDOUT;
			fail("eth0 not running");
		}
		usleep(10000);
	}
	say("INNER-LINK ifindex=%d mac=%02x:%02x:%02x:%02x:%02x:%02x uptime=%s", ifindex, mac[0], mac[1], mac[2],
	    mac[3], mac[4], mac[5], uptime());

	struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_protocol = htons(ETYPE), .sll_ifindex = ifindex};
	if (bind(s, (struct sockaddr *)&sll, sizeof(sll)) < 0)
		fail("bind eth0");
	uint8_t tx[1514], rx[2048];
	int received = 0, bad = 0, dup = 0, ooo = 0;
	int32_t last = -1;
	uint8_t *seen = calloc(frames, 1);
	long long start = now_ms();
	for (int b = 0; b < frames; b += BURST) {
		int n = frames - b < BURST ? frames - b : BURST;
		for (int k = 0; k < n; k++) {
			uint32_t seq = b + k, nseq = htonl(seq);
			int len = frame_len(seq);
			memset(tx, 0xff, 6);
			memcpy(tx + 6, mac, 6);
			tx[12] = ETYPE >> 8, tx[13] = ETYPE & 0xff;
			memcpy(tx + 14, MAGIC, 4);
			memcpy(tx + 18, &nseq, 4);
			for (int i = HDR; i < len; i++)
				tx[i] = pattern(seq, i);
			if (send(s, tx, len, 0) != len)
				fail("send");
		}
		/* this burst back: up to timeout_s with no frame */
		while (received + bad + dup < b + n) {
			struct pollfd p = {.fd = s, .events = POLLIN};
			int r = poll(&p, 1, timeout_s * 1000);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				break;
			struct sockaddr_ll from;
			socklen_t fl = sizeof(from);
			ssize_t got = recvfrom(s, rx, sizeof(rx), 0, (struct sockaddr *)&from, &fl);
			if (got < 0)
				fail("recvfrom");
			if (from.sll_pkttype == PACKET_OUTGOING)
				continue;
			uint32_t seq;
			if (got < HDR || memcmp(rx + 14, MAGIC, 4)) {
				bad++;
				continue;
			}
			memcpy(&seq, rx + 18, 4);
			seq = ntohl(seq);
			int ok = seq < (uint32_t)frames && got == frame_len(seq) && !memcmp(rx + 6, mac, 6);
			for (int i = HDR; ok && i < got; i++)
				ok = rx[i] == pattern(seq, i);
			if (!ok) {
				bad++;
				continue;
			}
			if (seen[seq]) {
				dup++;
				continue;
			}
			seen[seq] = 1;
			if ((int32_t)seq < last)
				ooo++;
			last = seq;
			received++;
		}
		if (received + bad + dup < b + n)
			break; /* a burst did not come back in time: report what came */
	}
	long long ms = now_ms() - start;
	int lost = frames - received;
	say("INNER-RESULT frames=%d received=%d lost=%d bad=%d dup=%d ooo=%d ms=%lld uptime=%s", frames, received,
	    lost, bad, dup, ooo, ms, uptime());
	if (lost || bad || dup || ooo)
		say("INNER-TRAFFIC FAIL %d lost, %d bad, %d duplicated, %d out of order", lost, bad, dup, ooo);
	else
		say("INNER-TRAFFIC ok");
	end();
}
