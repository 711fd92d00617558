/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vlu-proto.c - the vlud wire format: framing over SOCK_SEQPACKET with
 * SCM_RIGHTS, bounded JSON parsing, request splitting, argument checking,
 * reply/event/greeting builders and error class names.
 *
 * Never logs, never exits, never raises SIGPIPE (MSG_NOSIGNAL).  Returns
 * >= 0 or -errno; output parameters are written only on success.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

#include "basics.h"
#include "vlu-proto.h"

/* ---- error classes ---- */

static const char *const error_class_names[_VLU_ERR_MAX] = {
	[VLU_ERR_GENERIC] = "GenericError",
	[VLU_ERR_COMMAND_NOT_FOUND] = "CommandNotFound",
	[VLU_ERR_INVALID_ARGUMENT] = "InvalidArgument",
	[VLU_ERR_NOT_NEGOTIATED] = "NotNegotiated",
	[VLU_ERR_PERMISSION_DENIED] = "PermissionDenied",
	[VLU_ERR_NOT_FOUND] = "NotFound",
	[VLU_ERR_BUSY] = "Busy",
	[VLU_ERR_LIMIT_EXCEEDED] = "LimitExceeded",
	[VLU_ERR_DEVICE_ERROR] = "DeviceError",
	[VLU_ERR_UNSUPPORTED] = "Unsupported",
	[VLU_ERR_TIMEOUT] = "Timeout",
	[VLU_ERR_INTERNAL] = "Internal",
};

const char *vlu_error_class_name(enum vlu_error_class c)
{
	if ((unsigned)c >= _VLU_ERR_MAX)
		return error_class_names[VLU_ERR_GENERIC];
	return error_class_names[c];
}

int vlu_error_class_from_name(const char *name)
{
	if (!name)
		return -EINVAL;
	for (int i = 0; i < _VLU_ERR_MAX; i++)
		if (strcmp(name, error_class_names[i]) == 0)
			return i;
	return -EINVAL;
}

/* ---- framing ---- */

int vlu_msg_send(int sock, const char *buf, size_t len, const int *fds, size_t nfds)
{
	/* Control buffer big enough for the largest fd array, aligned for cmsghdr. */
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * VLU_MAX_FDS_PER_MSG)];
	} control;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (sock < 0 || !buf)
		return -EBADF;
	/* A zero-length SOCK_SEQPACKET message reads as EOF on the other side: never send one. */
	if (len == 0)
		return -EINVAL;
	if (len > VLU_MAX_MSG_BYTES || nfds > VLU_MAX_FDS_PER_MSG)
		return -EMSGSIZE;
	if (nfds > 0) {
		struct cmsghdr *cmsg;

		if (!fds)
			return -EINVAL;
		for (size_t i = 0; i < nfds; i++)
			if (fds[i] < 0)
				return -EBADF;
		memset(&control, 0, sizeof(control));
		mh.msg_control = control.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		cmsg = CMSG_FIRSTHDR(&mh);
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		cmsg->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * nfds);
	}

	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	/* SOCK_SEQPACKET sends are atomic; a short count means the socket type is wrong. */
	if ((size_t)n != len)
		return -EPROTO;
	return 0;
}

ssize_t vlu_msg_recv_all(int sock, char *buf, size_t bufsz, int ret_fds[VLU_MAX_FDS_PER_MSG], size_t *ret_nfds)
{
	/* Room for SCM_MAX_FD fds (all a message can carry: the kernel never has to drop, and so close, one
	 * in our thread) plus SCM_CREDENTIALS in case SO_PASSCRED is on. */
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * VLU_MAX_FDS_PER_MSG) + CMSG_SPACE(sizeof(struct ucred))];
	} control;
	struct iovec iov;
	struct msghdr mh;
	size_t nfds = 0;
	ssize_t n;

	*ret_nfds = 0;
	if (sock < 0)
		return -EBADF;
	if (!buf || bufsz < 2 || !ret_fds)
		return -EINVAL;

	iov = (struct iovec){ .iov_base = buf, .iov_len = bufsz - 1 };
	mh = (struct msghdr){
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = control.buf,
		.msg_controllen = sizeof(control.buf),
	};

	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		size_t k;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len < CMSG_LEN(0))
			continue;
		k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		if (k > VLU_MAX_FDS_PER_MSG - nfds)
			k = VLU_MAX_FDS_PER_MSG - nfds; /* cannot happen: the control buffer holds no more */
		memcpy(ret_fds + nfds, CMSG_DATA(c), k * sizeof(int));
		nfds += k;
	}
	*ret_nfds = nfds;
	if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
		return -EMSGSIZE; /* the fds are the caller's to close */
	buf[n] = '\0';
	return n;
}

ssize_t vlu_msg_recv(int sock, char *buf, size_t bufsz, int *ret_fds, size_t max_fds, size_t *ret_nfds)
{
	int fds[VLU_MAX_FDS_PER_MSG];
	size_t nfds = 0;
	ssize_t n;

	if (max_fds > 0 && !ret_fds)
		return -EINVAL;
	n = vlu_msg_recv_all(sock, buf, bufsz, fds, &nfds);
	if (n < 0 && n != -EMSGSIZE)
		return n;
	if (n == -EMSGSIZE || nfds > max_fds || (n == 0 && nfds > 0)) {
		/* The part of the message or of its fds we did get is useless, more fds than the caller
		 * accepts, or fds riding on an empty message (EOF): drop them all. */
		close_many(fds, nfds);
		return n == 0 ? 0 : -EMSGSIZE;
	}
	if (ret_nfds) {
		if (nfds)
			memcpy(ret_fds, fds, nfds * sizeof(int));
		*ret_nfds = nfds;
	} else {
		close_many(fds, nfds); /* caller did not ask for fds: do not leak them */
	}
	return n;
}

_printf_(3, 4) static void set_err(char *errbuf, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!errbuf || errlen == 0)
		return;
	va_start(ap, fmt);
	if (vsnprintf(errbuf, errlen, fmt, ap) >= (int)errlen)
		vlu_utf8_truncate(errbuf, errlen - 1); /* never end in half a character */
	va_end(ap);
}

/* ---- UTF-8 ---- */

/* Length of the strictly valid UTF-8 sequence at s[0..n) (RFC 3629: no overlongs, no surrogates,
 * <= U+10FFFF; NUL excluded), or 0. */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
	unsigned char c;

	if (n == 0)
		return 0;
	c = s[0];
	if (c == 0)
		return 0;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		return n >= 2 && (s[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		if (n < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
			return 0;
		if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f))
			return 0; /* overlong; surrogate */
		return 3;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		if (n < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
			return 0;
		if ((c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] > 0x8f))
			return 0; /* overlong; above U+10FFFF */
		return 4;
	}
	return 0;
}

bool vlu_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;

	if (!s)
		return len == 0;
	for (size_t i = 0; i < len;) {
		size_t k = utf8_seq_len(p + i, len - i);

		if (k == 0)
			return false;
		i += k;
	}
	return true;
}

size_t vlu_utf8_prefix(const char *s, size_t max)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	if (!s)
		return 0;
	while (i < max && p[i]) {
		unsigned char c = p[i];
		/* the length the lead byte announces */
		size_t want = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xc2 && c <= 0xdf ? 2 : 1;
		size_t avail = strnlen((const char *)p + i, 4);
		size_t k = utf8_seq_len(p + i, avail);

		if (k == 0) {
			if (avail < want)
				break; /* a character cut by the end of the string (a truncating snprintf) */
			k = 1;	       /* a byte that is no character: kept, repaired at send */
		}
		if (k > max - i)
			break; /* the character would be cut by max */
		i += k;
	}
	return i;
}

size_t vlu_utf8_truncate(char *s, size_t max)
{
	size_t n;

	if (!s)
		return 0;
	n = vlu_utf8_prefix(s, max);
	s[n] = '\0';
	return n;
}

/* ---- strict JSON text (vlu_json_check) ---- */

struct scan {
	const unsigned char *p, *start, *end;
	int depth, max_depth;
	char *err;
	size_t errlen;
};

_printf_(3, 4) static int scan_fail(struct scan *x, const unsigned char *at, const char *fmt, ...)
{
	char what[160];
	va_list ap;

	if (!x->err || x->errlen == 0)
		return -EINVAL;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(x->err, x->errlen, "%s at byte %zu", what, (size_t)(at - x->start));
	return -EINVAL;
}

static void scan_ws(struct scan *x)
{
	while (x->p < x->end && (*x->p == ' ' || *x->p == '\t' || *x->p == '\n' || *x->p == '\r'))
		x->p++;
}

static int hex4(const unsigned char *p, const unsigned char *end, unsigned *ret)
{
	unsigned v = 0;

	if (end - p < 4)
		return -EINVAL;
	for (int i = 0; i < 4; i++) {
		unsigned char c = p[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return -EINVAL;
	}
	*ret = v;
	return 0;
}

/* x->p at the opening quote */
static int scan_string(struct scan *x)
{
	const unsigned char *q = x->p + 1;

	while (q < x->end) {
		unsigned char c = *q;

		if (c == '"') {
			x->p = q + 1;
			return 0;
		}
		if (c < 0x20)
			return scan_fail(x, q, "raw control character U+%04X in a string (must be escaped)", c);
		if (c == '\\') {
			unsigned u, lo;

			if (q + 1 >= x->end)
				break;
			c = q[1];
			if (strchr("\"\\/bfnrt", c) && c) {
				q += 2;
				continue;
			}
			if (c != 'u')
				return scan_fail(x, q, "invalid escape '\\%c' in a string", c >= 0x20 && c < 0x7f ? c : '?');
			if (hex4(q + 2, x->end, &u) < 0)
				return scan_fail(x, q, "invalid \\u escape in a string (4 hex digits expected)");
			if (u == 0)
				return scan_fail(x, q, "NUL (\\u0000) in a string or member name");
			if (u >= 0xdc00 && u <= 0xdfff)
				return scan_fail(x, q, "unpaired UTF-16 surrogate escape \\u%04x in a string", u);
			if (u >= 0xd800 && u <= 0xdbff) {
				if (x->end - (q + 6) < 6 || q[6] != '\\' || q[7] != 'u' || hex4(q + 8, x->end, &lo) < 0 ||
				    lo < 0xdc00 || lo > 0xdfff)
					return scan_fail(x, q, "unpaired UTF-16 surrogate escape \\u%04x in a string", u);
				q += 12;
				continue;
			}
			q += 6;
			continue;
		}
		if (c >= 0x80) {
			size_t k = utf8_seq_len(q, (size_t)(x->end - q));

			if (k == 0)
				return scan_fail(x, q, "invalid UTF-8 in a string (overlong, surrogate, above U+10FFFF "
						       "or cut)");
			q += k;
			continue;
		}
		q++;
	}
	return scan_fail(x, x->p, "unterminated string");
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static int scan_number(struct scan *x)
{
	const unsigned char *s = x->p, *q = x->p;
	bool neg = false, integer = true;

	if (*q == '-') {
		neg = true;
		q++;
	}
	if (q >= x->end || !is_digit(*q))
		return scan_fail(x, s, "invalid number");
	if (*q == '0')
		q++;
	else
		while (q < x->end && is_digit(*q))
			q++;
	if (q < x->end && *q == '.') {
		integer = false;
		q++;
		if (q >= x->end || !is_digit(*q))
			return scan_fail(x, s, "invalid number (digits expected after '.')");
		while (q < x->end && is_digit(*q))
			q++;
	}
	if (q < x->end && (*q == 'e' || *q == 'E')) {
		integer = false;
		q++;
		if (q < x->end && (*q == '+' || *q == '-'))
			q++;
		if (q >= x->end || !is_digit(*q))
			return scan_fail(x, s, "invalid number (digits expected in the exponent)");
		while (q < x->end && is_digit(*q))
			q++;
	}
	if (integer) {
		/* json-c saturates beyond 64 bits: refuse instead of changing the value */
		uint64_t mag = 0;

		for (const unsigned char *d = s + neg; d < q; d++) {
			unsigned v = *d - '0';

			if (mag > (UINT64_MAX - v) / 10)
				return scan_fail(x, s, "integer outside the 64-bit range");
			mag = mag * 10 + v;
		}
		if (neg && mag > (uint64_t)INT64_MAX + 1)
			return scan_fail(x, s, "integer outside the 64-bit range");
	} else {
		/* strtod needs a terminated copy (buf need not be); most numbers fit on the stack */
		_cleanup_free_ char *heap = NULL;
		char small[64], *copy = small;
		size_t n = (size_t)(q - s);
		double d;

		if (n < sizeof(small)) {
			memcpy(small, s, n);
			small[n] = '\0';
		} else {
			copy = heap = strndup((const char *)s, n);
			if (!copy)
				return -ENOMEM;
		}
		d = strtod(copy, NULL);
		if (!isfinite(d))
			return scan_fail(x, s, "number is not finite (beyond the range of a double)");
	}
	x->p = q;
	return 0;
}

static int scan_value(struct scan *x);

static int scan_container(struct scan *x)
{
	bool object = *x->p == '{';
	unsigned char close = object ? '}' : ']';
	int r;

	if (++x->depth > x->max_depth) {
		if (x->err && x->errlen)
			snprintf(x->err, x->errlen, "JSON nested deeper than %d levels", x->max_depth);
		return -E2BIG;
	}
	x->p++;
	scan_ws(x);
	if (x->p < x->end && *x->p == close) {
		x->p++;
		x->depth--;
		return 0;
	}
	for (;;) {
		if (object) {
			if (x->p >= x->end || *x->p != '"')
				return scan_fail(x, x->p, "member name (a string in double quotes) expected");
			r = scan_string(x);
			if (r < 0)
				return r;
			scan_ws(x);
			if (x->p >= x->end || *x->p != ':')
				return scan_fail(x, x->p, "':' expected");
			x->p++;
		}
		r = scan_value(x);
		if (r < 0)
			return r;
		if (x->p < x->end && *x->p == ',') {
			x->p++;
			scan_ws(x);
			continue;
		}
		if (x->p < x->end && *x->p == close) {
			x->p++;
			x->depth--;
			return 0;
		}
		return scan_fail(x, x->p, "',' or '%c' expected", close);
	}
}

/* a value with the whitespace around it */
static int scan_value(struct scan *x)
{
	static const char *const literals[] = { "true", "false", "null" };
	int r = -EINVAL;

	scan_ws(x);
	if (x->p >= x->end)
		return scan_fail(x, x->p, "value expected");
	switch (*x->p) {
	case '{':
	case '[':
		r = scan_container(x);
		break;
	case '"':
		r = scan_string(x);
		break;
	case '-':
	case '0' ... '9':
		r = scan_number(x);
		break;
	default:
		for (size_t i = 0; i < ELEMENTSOF(literals); i++) {
			size_t n = strlen(literals[i]);

			if ((size_t)(x->end - x->p) >= n && memcmp(x->p, literals[i], n) == 0) {
				x->p += n;
				r = 0;
				break;
			}
		}
		if (r < 0)
			return scan_fail(x, x->p, "value expected (string, number, object, array, true, false or null)");
	}
	if (r < 0)
		return r;
	scan_ws(x);
	return 0;
}

int vlu_json_check(const char *buf, size_t len, int max_depth, char *errbuf, size_t errlen)
{
	struct scan x = {
		.p = (const unsigned char *)buf,
		.start = (const unsigned char *)buf,
		.end = (const unsigned char *)buf + len,
		.max_depth = max_depth > 0 ? max_depth : VLU_DEFAULT_MAX_DEPTH,
		.err = errbuf,
		.errlen = errlen,
	};
	int r;

	if (errbuf && errlen)
		errbuf[0] = '\0';
	if (!buf)
		return -EINVAL;
	scan_ws(&x);
	if (x.p >= x.end || *x.p != '{')
		return scan_fail(&x, x.p, "a message must be one JSON object");
	r = scan_value(&x);
	if (r < 0)
		return r;
	if (x.p < x.end)
		return scan_fail(&x, x.p, "trailing data after the JSON object");
	return 0;
}

/* ---- JSON ---- */

int vlu_json_parse(const char *buf, size_t len, int max_depth, json_object **ret)
{
	return vlu_json_parse_ex(buf, len, max_depth, ret, NULL, 0);
}

int vlu_json_parse_ex(const char *buf, size_t len, int max_depth, json_object **ret, char *errbuf, size_t errlen)
{
	json_tokener *tok;
	json_object *j;
	enum json_tokener_error jerr;
	size_t end;
	int r = 0;

	if (!buf || !ret)
		return -EINVAL;
	if (max_depth <= 0)
		max_depth = VLU_DEFAULT_MAX_DEPTH;
	if (errbuf && errlen)
		errbuf[0] = '\0';
	if (len == 0 || len > (size_t)INT32_MAX) {
		set_err(errbuf, errlen, "empty or oversized message");
		return -EINVAL;
	}
	/* json-c alone is not strict enough (see vlu_json_check()); a NUL byte is a raw control
	 * character to the check, so json-c never sees one */
	r = vlu_json_check(buf, len, max_depth, errbuf, errlen);
	if (r < 0)
		return r;

	tok = json_tokener_new_ex(max_depth);
	if (!tok)
		return -ENOMEM;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);

	j = json_tokener_parse_ex(tok, buf, (int)len);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);

	if (jerr == json_tokener_error_depth) {
		set_err(errbuf, errlen, "JSON nested deeper than %d levels", max_depth);
		r = -E2BIG;
		goto fail;
	}
	if (jerr != json_tokener_success || !j) {
		/* includes json_tokener_continue: the object is incomplete */
		set_err(errbuf, errlen, "not JSON: %s", json_tokener_error_desc(jerr));
		r = -EINVAL;
		goto fail;
	}
	/* Only whitespace may follow the one object. */
	for (size_t i = end; i < len; i++)
		if (!strchr(" \t\r\n", buf[i])) {
			set_err(errbuf, errlen, "trailing data after the JSON object at byte %zu", i);
			r = -EINVAL;
			goto fail;
		}
	if (!json_object_is_type(j, json_type_object)) {
		set_err(errbuf, errlen, "a message must be one JSON object");
		r = -EINVAL;
		goto fail;
	}
	*ret = j;
	return 0;
fail:
	json_object_put(j);
	return r;
}

/* Deeper than any tree we build or accept (max_json_depth <= 64): a bound for the recursion only;
 * values below it are neither checked nor repaired. */
#define TREE_MAX_DEPTH 128

/* A repaired copy of s[0..len): every byte not part of valid UTF-8, and every NUL, becomes '?'. */
static char *utf8_repaired(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	char *copy = malloc(len + 1);

	if (!copy)
		return NULL;
	for (size_t i = 0; i < len;) {
		size_t k = utf8_seq_len(p + i, len - i);

		if (k == 0) {
			copy[i++] = '?';
			continue;
		}
		memcpy(copy + i, p + i, k);
		i += k;
	}
	copy[len] = '\0';
	return copy;
}

/* Repair or (ret_err != NULL) check j; returns the number of bad values (repaired or found). */
static size_t tree_walk(json_object *j, unsigned depth, char *err, size_t errlen)
{
	size_t n = 0;

	if (!j || depth > TREE_MAX_DEPTH)
		return 0;
	switch (json_object_get_type(j)) {
	case json_type_string: {
		const char *s = json_object_get_string(j);
		size_t len = (size_t)json_object_get_string_len(j);
		_cleanup_free_ char *fixed = NULL;

		if (vlu_utf8_valid(s, len))
			return 0;
		if (err) {
			set_err(err, errlen, "a string is not valid UTF-8 or contains NUL");
			return 1;
		}
		fixed = utf8_repaired(s, len);
		if (fixed)
			json_object_set_string_len(j, fixed, (int)len);
		return 1;
	}
	case json_type_array: {
		size_t len = json_object_array_length(j);

		for (size_t i = 0; i < len; i++) {
			json_object *e = json_object_array_get_idx(j, i);

			if (json_object_is_type(e, json_type_double) && !isfinite(json_object_get_double(e))) {
				n++;
				if (err) {
					set_err(err, errlen, "a number is not finite");
					return n;
				}
				json_object_array_put_idx(j, i, NULL);
				continue;
			}
			n += tree_walk(e, depth + 1, err, errlen);
			if (n && err)
				return n;
		}
		return n;
	}
	case json_type_object: {
		/* keys to rename are collected first: the table must not change under the iteration */
		const char *bad_keys[16];
		size_t n_bad = 0;
		bool more = false;

		json_object_object_foreach(j, key, val) {
			if (!vlu_utf8_valid(key, strlen(key))) {
				n++;
				if (err) {
					set_err(err, errlen, "a member name is not valid UTF-8");
					return n;
				}
				if (n_bad < ELEMENTSOF(bad_keys))
					bad_keys[n_bad++] = key;
				else
					more = true;
			}
			if (json_object_is_type(val, json_type_double) && !isfinite(json_object_get_double(val))) {
				n++;
				if (err) {
					set_err(err, errlen, "member '%.*s' is not a finite number",
						(int)vlu_utf8_prefix(key, 64), key);
					return n;
				}
				json_object_object_add(j, key, NULL); /* same key: replaces the value in place */
				continue;
			}
			n += tree_walk(val, depth + 1, err, errlen);
			if (n && err)
				return n;
		}
		for (size_t i = 0; i < n_bad; i++) {
			_cleanup_free_ char *fixed = utf8_repaired(bad_keys[i], strlen(bad_keys[i]));
			json_object *v = NULL;

			if (!fixed)
				continue;
			json_object_object_get_ex(j, bad_keys[i], &v);
			json_object_get(v);
			json_object_object_del(j, bad_keys[i]); /* frees the key bad_keys[i] pointed to */
			if (json_object_object_add(j, fixed, v) < 0)
				json_object_put(v);
		}
		if (more) /* another pass for the keys beyond the first 16 (each pass renames 16) */
			(void)tree_walk(j, depth, NULL, 0);
		return n;
	}
	default:
		return 0;
	}
}

size_t vlu_json_repair(json_object *j)
{
	if (json_object_is_type(j, json_type_double) && !isfinite(json_object_get_double(j)))
		json_object_set_double(j, 0); /* the root itself: cannot become null, 0 is the best we can do */
	return tree_walk(j, 0, NULL, 0);
}

int vlu_json_check_tree(json_object *j, char *errbuf, size_t errlen)
{
	char dummy[1];

	if (errbuf && errlen)
		errbuf[0] = '\0';
	if (json_object_is_type(j, json_type_double) && !isfinite(json_object_get_double(j))) {
		set_err(errbuf, errlen, "a number is not finite");
		return -EINVAL;
	}
	/* tree_walk checks when given a buffer */
	if (tree_walk(j, 0, errbuf && errlen ? errbuf : dummy, errbuf && errlen ? errlen : sizeof(dummy)) > 0)
		return -EINVAL;
	return 0;
}

const char *vlu_json_dump(json_object *j, size_t *ret_len)
{
	size_t len = 0;
	const char *s;

	/* the last line of defence: whatever an emitter put in, nothing invalid leaves */
	(void)vlu_json_repair(j);
	s = json_object_to_json_string_length(j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
							  &len);
	if (s && ret_len)
		*ret_len = len;
	return s;
}

/* ---- names ---- */

bool vlu_name_valid(const char *s)
{
	size_t n;

	if (!s)
		return false;
	n = strlen(s);
	if (n < 1 || n > VLU_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
		      c == '.' || c == ':' || c == '-'))
			return false;
	}
	return true;
}

/* ---- events ---- */

int vlu_event_find(const char *name)
{
	if (!name)
		return -ENOENT;
	for (int i = 0; i < _VLU_EV_MAX; i++)
		if (strcmp(vlu_event_names[i], name) == 0)
			return i;
	return -ENOENT;
}

int vlu_event_mask_from_json(json_object *arr, vlu_event_mask *ret, char *errbuf, size_t errlen)
{
	vlu_event_mask m = 0;
	size_t n;

	if (!json_object_is_type(arr, json_type_array)) {
		set_err(errbuf, errlen, "argument 'events' must be of type [event]");
		return -EINVAL;
	}
	n = json_object_array_length(arr);
	if (n < 1 || n > VLU_EVENTS_FILTER_MAX) {
		set_err(errbuf, errlen, "argument 'events' must have 1..%d entries", VLU_EVENTS_FILTER_MAX);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(arr, i);
		const char *s;
		int id;

		if (!json_object_is_type(e, json_type_string) ||
		    strlen(json_object_get_string(e)) != (size_t)json_object_get_string_len(e)) {
			set_err(errbuf, errlen, "argument 'events': entry %zu is not a string", i);
			return -EINVAL;
		}
		s = json_object_get_string(e);
		/* an unknown name (a typo) is refused: it would filter out every event silently */
		id = vlu_event_find(s);
		if (id < 0) {
			set_err(errbuf, errlen, "argument 'events': entry %zu ('%.*s') is not a known event", i,
				(int)vlu_utf8_prefix(s, 64), s);
			return -EINVAL;
		}
		m |= VLU_EVENT_BIT(id);
	}
	*ret = m;
	return 0;
}

/* ---- command table lookup ---- */

const struct vlu_command *vlu_command_find(const char *name)
{
	if (!name)
		return NULL;
	for (size_t i = 0; i < _VLU_CMD_MAX; i++)
		if (vlu_commands[i].name && strcmp(vlu_commands[i].name, name) == 0)
			return &vlu_commands[i];
	return NULL;
}

/* ---- argument checking ---- */


const char *vlu_arg_type_name(enum vlu_arg_type t)
{
	switch (t) {
	case VLU_ARG_STRING:
		return "string";
	case VLU_ARG_NAME:
		return "name";
	case VLU_ARG_INT:
		return "int";
	case VLU_ARG_BOOL:
		return "bool";
	case VLU_ARG_NAME_ARRAY:
		return "[name]";
	case VLU_ARG_STRING_ARRAY:
		return "[string]";
	case VLU_ARG_OBJECT:
		return "object";
	case VLU_ARG_OBJECT_ARRAY:
		return "[object]";
	case VLU_ARG_EVENT_ARRAY:
		return "[event]";
	}
	return "?";
}

static const struct vlu_arg *find_arg(const struct vlu_command *cmd, const char *key)
{
	for (size_t i = 0; i < cmd->n_args; i++)
		if (strcmp(cmd->args[i].name, key) == 0)
			return &cmd->args[i];
	return NULL;
}

/* Check one argument value against its schema; -EINVAL with a description on mismatch. */
static int check_arg(const struct vlu_arg *a, json_object *v, char *errbuf, size_t errlen)
{
	switch (a->type) {
	case VLU_ARG_STRING:
	case VLU_ARG_NAME: {
		if (!json_object_is_type(v, json_type_string))
			goto wrong_type;
		const char *s = json_object_get_string(v);
		size_t len = (size_t)json_object_get_string_len(v);
		if (strlen(s) != len) {
			set_err(errbuf, errlen, "argument '%s' contains a NUL character", a->name);
			return -EINVAL;
		}
		if ((int64_t)len < a->min || (int64_t)len > a->max) {
			set_err(errbuf, errlen, "argument '%s' must be %" PRId64 "..%" PRId64 " characters long",
				a->name, a->min, a->max);
			return -EINVAL;
		}
		if (a->type == VLU_ARG_NAME && !vlu_name_valid(s)) {
			set_err(errbuf, errlen, "argument '%s' is not a valid name (1..%d of [A-Za-z0-9_.:-])", a->name,
				VLU_NAME_MAX);
			return -EINVAL;
		}
		return 0;
	}
	case VLU_ARG_INT: {
		if (!json_object_is_type(v, json_type_int))
			goto wrong_type;
		int64_t x = json_object_get_int64(v);
		/* json-c saturates values beyond int64; the range check below catches those as long as
		 * max < INT64_MAX and min > INT64_MIN, which the table guarantees (unit-tested). */
		if (x < a->min || x > a->max) {
			set_err(errbuf, errlen, "argument '%s' must be in %" PRId64 "..%" PRId64, a->name, a->min,
				a->max);
			return -EINVAL;
		}
		return 0;
	}
	case VLU_ARG_BOOL:
		if (!json_object_is_type(v, json_type_boolean))
			goto wrong_type;
		return 0;
	case VLU_ARG_OBJECT:
		if (!json_object_is_type(v, json_type_object))
			goto wrong_type;
		return 0;
	case VLU_ARG_EVENT_ARRAY: {
		vlu_event_mask m;

		if (!json_object_is_type(v, json_type_array))
			goto wrong_type;
		if ((int64_t)json_object_array_length(v) < a->min || (int64_t)json_object_array_length(v) > a->max) {
			set_err(errbuf, errlen, "argument '%s' must have %" PRId64 "..%" PRId64 " entries", a->name,
				a->min, a->max);
			return -EINVAL;
		}
		/* the same parse the daemon's filter uses: what passes here, the handler can turn into a mask */
		return vlu_event_mask_from_json(v, &m, errbuf, errlen);
	}
	case VLU_ARG_NAME_ARRAY:
	case VLU_ARG_STRING_ARRAY:
	case VLU_ARG_OBJECT_ARRAY: {
		if (!json_object_is_type(v, json_type_array))
			goto wrong_type;
		size_t n = json_object_array_length(v);
		if ((int64_t)n < a->min || (int64_t)n > a->max) {
			set_err(errbuf, errlen, "argument '%s' must have %" PRId64 "..%" PRId64 " entries", a->name,
				a->min, a->max);
			return -EINVAL;
		}
		for (size_t i = 0; i < n; i++) {
			json_object *e = json_object_array_get_idx(v, i);

			if (a->type == VLU_ARG_OBJECT_ARRAY) {
				if (!json_object_is_type(e, json_type_object)) {
					set_err(errbuf, errlen, "argument '%s': entry %zu is not an object", a->name, i);
					return -EINVAL;
				}
				continue;
			}
			if (!json_object_is_type(e, json_type_string) ||
			    strlen(json_object_get_string(e)) != (size_t)json_object_get_string_len(e)) {
				set_err(errbuf, errlen, "argument '%s': entry %zu is not a string", a->name, i);
				return -EINVAL;
			}
			if (a->type != VLU_ARG_NAME_ARRAY)
				continue;
			const char *s = json_object_get_string(e);
			if (!vlu_name_valid(s)) {
				set_err(errbuf, errlen,
					"argument '%s': entry %zu is not a valid name (1..%d of [A-Za-z0-9_.:-])", a->name,
					i, VLU_NAME_MAX);
				return -EINVAL;
			}
			/* names in one request must be distinct (n <= 253, quadratic is fine) */
			for (size_t k = 0; k < i; k++)
				if (strcmp(s, json_object_get_string(json_object_array_get_idx(v, k))) == 0) {
					set_err(errbuf, errlen, "argument '%s': name '%s' appears twice", a->name, s);
					return -EINVAL;
				}
		}
		return 0;
	}
	}
wrong_type:
	set_err(errbuf, errlen, "argument '%s' must be of type %s", a->name, vlu_arg_type_name(a->type));
	return -EINVAL;
}

int vlu_command_check(const struct vlu_command *cmd, json_object *args, size_t nfds, enum vlu_error_class *ret_class,
		      char *errbuf, size_t errlen)
{
	enum vlu_error_class cls = VLU_ERR_INVALID_ARGUMENT;
	int r;

	if (!cmd)
		return -EINVAL;
	if (errbuf && errlen)
		errbuf[0] = '\0';

	if (nfds > VLU_MAX_FDS_PER_MSG) {
		cls = VLU_ERR_LIMIT_EXCEEDED;
		set_err(errbuf, errlen, "too many fds (%zu, at most %d per message)", nfds, VLU_MAX_FDS_PER_MSG);
		r = -E2BIG;
		goto fail;
	}

	if (args && !json_object_is_type(args, json_type_object)) {
		set_err(errbuf, errlen, "'arguments' must be an object");
		r = -EINVAL;
		goto fail;
	}

	if (args) {
		json_object_object_foreach(args, key, val) {
			const struct vlu_arg *a = find_arg(cmd, key);

			if (!a) {
				set_err(errbuf, errlen, "unknown argument '%.*s' for command '%s'",
					(int)vlu_utf8_prefix(key, 64), key, cmd->name);
				r = -EINVAL;
				goto fail;
			}
			r = check_arg(a, val, errbuf, errlen);
			if (r < 0)
				goto fail;
		}
	}

	for (size_t i = 0; i < cmd->n_args; i++) {
		const struct vlu_arg *a = &cmd->args[i];

		if (a->required && !(args && json_object_object_get_ex(args, a->name, NULL))) {
			set_err(errbuf, errlen, "missing required argument '%s' for command '%s'", a->name, cmd->name);
			r = -EINVAL;
			goto fail;
		}
	}

	switch (cmd->fds_in) {
	case VLU_FDS_NONE:
		if (nfds > 0) {
			set_err(errbuf, errlen, "command '%s' takes no fds, got %zu", cmd->name, nfds);
			r = -EINVAL;
			goto fail;
		}
		break;
	case VLU_FDS_PER_NAME: {
		json_object *names = NULL;
		size_t want = 0;

		if (args && json_object_object_get_ex(args, "names", &names) &&
		    json_object_is_type(names, json_type_array))
			want = json_object_array_length(names);
		if (nfds != want) {
			set_err(errbuf, errlen, "command '%s' needs one fd per name: %zu names, %zu fds", cmd->name, want,
				nfds);
			r = -EINVAL;
			goto fail;
		}
		break;
	}
	}
	return 0;

fail:
	if (ret_class)
		*ret_class = cls;
	return r;
}

/* ---- requests ---- */

bool vlu_id_valid(json_object *id)
{
	if (!id)
		return true;
	switch (json_object_get_type(id)) {
	case json_type_string:
		return vlu_utf8_valid(json_object_get_string(id), (size_t)json_object_get_string_len(id));
	case json_type_int:
		/* json-c holds 2^63..2^64-1 as uint64, which get_int64 would saturate */
		return json_object_get_int64(id) < 0 || json_object_get_uint64(id) <= (uint64_t)INT64_MAX;
	default:
		return false;
	}
}

json_object *vlu_request_id(json_object *msg)
{
	json_object *id = NULL;

	if (!msg || !json_object_is_type(msg, json_type_object))
		return NULL;
	if (!json_object_object_get_ex(msg, "id", &id))
		return NULL;
	if (!vlu_id_valid(id))
		return NULL; /* never echo what we refused */
	return id;
}

int vlu_request_parse(json_object *msg, const char **ret_execute, json_object **ret_args, json_object **ret_id,
		      char *errbuf, size_t errlen)
{
	json_object *exec = NULL, *args = NULL, *id = NULL;

	if (errbuf && errlen)
		errbuf[0] = '\0';
	if (!msg || !json_object_is_type(msg, json_type_object)) {
		set_err(errbuf, errlen, "a request must be a JSON object");
		return -EINVAL;
	}
	json_object_object_foreach(msg, key, val) {
		if (strcmp(key, "execute") == 0)
			exec = val;
		else if (strcmp(key, "arguments") == 0) {
			if (!json_object_is_type(val, json_type_object)) {
				set_err(errbuf, errlen, "'arguments' must be an object");
				return -EINVAL;
			}
			args = val;
		} else if (strcmp(key, "id") == 0) {
			if (!vlu_id_valid(val)) {
				set_err(errbuf, errlen, "'id' must be a string or an integer in -2^63..2^63-1 (got %s%s)",
					json_type_to_name(json_object_get_type(val)),
					json_object_is_type(val, json_type_int) ? " beyond int64" : "");
				return -EINVAL;
			}
			id = val;
		} else {
			set_err(errbuf, errlen, "unknown member '%.*s' in request", (int)vlu_utf8_prefix(key, 64), key);
			return -EINVAL;
		}
	}
	if (!exec || !json_object_is_type(exec, json_type_string)) {
		set_err(errbuf, errlen, "'execute' must be a string naming the command");
		return -EINVAL;
	}
	if (strlen(json_object_get_string(exec)) != (size_t)json_object_get_string_len(exec)) {
		set_err(errbuf, errlen, "'execute' contains a NUL character");
		return -EINVAL;
	}

	if (ret_execute)
		*ret_execute = json_object_get_string(exec);
	if (ret_args)
		*ret_args = args;
	if (ret_id)
		*ret_id = id;
	return 0;
}

/* ---- builders ---- */

/* o[key] = v, v just allocated: -ENOMEM when its allocation (v NULL) or the add failed (v freed), so that
 * a builder returns NULL rather than an object with a null where a member should be */
static int add_new(json_object *o, const char *key, json_object *v)
{
	if (!v)
		return -ENOMEM;
	if (json_object_object_add(o, key, v) < 0) {
		json_object_put(v);
		return -ENOMEM;
	}
	return 0;
}

static int append_new(json_object *a, json_object *v)
{
	if (!v)
		return -ENOMEM;
	if (json_object_array_add(a, v) < 0) {
		json_object_put(v);
		return -ENOMEM;
	}
	return 0;
}

json_object *vlu_reply_return(json_object *ret, json_object *id)
{
	json_object *r = json_object_new_object();

	if (!r)
		goto fail;
	if (!ret) {
		ret = json_object_new_object();
		if (!ret)
			goto fail;
	}
	if (json_object_object_add(r, "return", ret) < 0)
		goto fail;
	ret = NULL; /* r's */
	if (id && add_new(r, "id", json_object_get(id)) < 0)
		goto fail;
	return r;
fail:
	json_object_put(ret);
	json_object_put(r);
	return NULL;
}

json_object *vlu_reply_error(enum vlu_error_class cls, const char *desc, json_object *id)
{
	_cleanup_json_ json_object *r = NULL;
	json_object *e;

	r = json_object_new_object();
	e = json_object_new_object();
	if (!r || !e) {
		json_object_put(e);
		return NULL;
	}
	if (json_object_object_add(r, "error", e) < 0) {
		json_object_put(e);
		return NULL;
	}
	if (add_new(e, "class", json_object_new_string(vlu_error_class_name(cls))) < 0 ||
	    add_new(e, "desc", json_object_new_string(desc ? desc : "")) < 0)
		return NULL;
	/* descriptions are often built from client strings cut with a width: repair here already so that
	 * the reply is valid as built, not only once vlu_json_dump() has seen it */
	(void)vlu_json_repair(e);
	if (id && add_new(r, "id", json_object_get(id)) < 0)
		return NULL;
	return TAKE_PTR(r);
}

json_object *vlu_event_new(const char *name, json_object *data)
{
	_cleanup_json_ json_object *ev = NULL;
	json_object *ts;
	struct timespec now;

	if (!name)
		goto fail;
	ev = json_object_new_object();
	if (!ev)
		goto fail;
	if (!data) {
		data = json_object_new_object();
		if (!data)
			return NULL;
	}
	if (add_new(ev, "event", json_object_new_string(name)) < 0)
		goto fail;
	if (json_object_object_add(ev, "data", data) < 0)
		goto fail;
	data = NULL; /* ev's */
	clock_gettime(CLOCK_REALTIME, &now);
	ts = json_object_new_object();
	if (!ts)
		return NULL;
	if (json_object_object_add(ev, "timestamp", ts) < 0) {
		json_object_put(ts);
		return NULL;
	}
	if (add_new(ts, "seconds", json_object_new_int64((int64_t)now.tv_sec)) < 0 ||
	    add_new(ts, "microseconds", json_object_new_int64((int64_t)(now.tv_nsec / 1000))) < 0)
		return NULL;
	return TAKE_PTR(ev);
fail:
	json_object_put(data);
	return NULL;
}

json_object *vlu_greeting_new(const char *package, const char *const *capabilities)
{
	_cleanup_json_ json_object *g = NULL;
	json_object *body, *ver, *caps;

	g = json_object_new_object();
	body = json_object_new_object();
	if (!g || !body) {
		json_object_put(body);
		return NULL;
	}
	if (json_object_object_add(g, "VLU", body) < 0) {
		json_object_put(body);
		return NULL;
	}
	ver = json_object_new_object();
	if (!ver)
		return NULL;
	if (json_object_object_add(body, "version", ver) < 0) {
		json_object_put(ver);
		return NULL;
	}
	if (add_new(ver, "major", json_object_new_int(VLU_PROTO_MAJOR)) < 0 ||
	    add_new(ver, "minor", json_object_new_int(VLU_PROTO_MINOR)) < 0 ||
	    add_new(ver, "micro", json_object_new_int(VLU_PROTO_MICRO)) < 0 ||
	    add_new(ver, "package", json_object_new_string(package ? package : "")) < 0)
		return NULL;
	caps = json_object_new_array();
	if (!caps)
		return NULL;
	if (json_object_object_add(body, "capabilities", caps) < 0) {
		json_object_put(caps);
		return NULL;
	}
	for (size_t i = 0; capabilities && capabilities[i]; i++)
		if (append_new(caps, json_object_new_string(capabilities[i])) < 0)
			return NULL;
	return TAKE_PTR(g);
}
