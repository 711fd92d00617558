/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* policy.c - access decisions from the configuration; see policy.h */
#include <fnmatch.h>
#include <string.h>

#include "policy.h"

static bool in_list(const unsigned *ids, size_t n, unsigned id)
{
	for (size_t i = 0; i < n; i++)
		if (ids[i] == id)
			return true;
	return false;
}

static bool matches(const struct vlud_idset *s, const struct peer_cred *p)
{
	if (in_list(s->uids, s->n_uids, p->uid))
		return true;
	if (in_list(s->gids, s->n_gids, p->gid))
		return true;
	for (size_t i = 0; i < p->n_groups; i++)
		if (in_list(s->gids, s->n_gids, p->groups[i]))
			return true;
	return false;
}

unsigned policy_roles(const struct vlud_config *c, const struct peer_cred *p)
{
	unsigned roles = 0;

	if (matches(&c->operators, p))
		roles |= ROLE_OPERATOR;
	for (size_t i = 0; i < c->n_vmms; i++)
		if (matches(&c->vmms[i].who, p))
			roles |= ROLE_VMM;
	return roles;
}

unsigned policy_fd_types(const struct vlud_config *c, const struct peer_cred *p)
{
	unsigned t = 0;

	for (size_t i = 0; i < c->n_vmms; i++)
		if (matches(&c->vmms[i].who, p))
			t |= c->vmms[i].fd_types;
	return t;
}

unsigned policy_max_fds(const struct vlud_config *c, const struct peer_cred *p)
{
	unsigned m = 0;

	for (size_t i = 0; i < c->n_vmms; i++)
		if (matches(&c->vmms[i].who, p) && c->vmms[i].max_fds > m)
			m = c->vmms[i].max_fds;
	if (m > c->limits.max_fds_per_instance)
		m = c->limits.max_fds_per_instance;
	return m;
}

bool policy_device_listed(const struct vlud_config *c, const struct peer_cred *p, const char *device)
{
	for (size_t i = 0; i < c->n_vmms; i++) {
		if (!matches(&c->vmms[i].who, p))
			continue;
		for (size_t k = 0; k < c->vmms[i].n_devices; k++)
			if (strcmp(c->vmms[i].devices[k], device) == 0)
				return true;
	}
	return false;
}

bool policy_foreach_peer_device(const struct vlud_config *c, const struct peer_cred *p,
				bool (*fn)(const char *dev, void *ud), void *ud)
{
	for (size_t i = 0; i < c->n_vmms; i++) {
		if (!matches(&c->vmms[i].who, p))
			continue;
		for (size_t k = 0; k < c->vmms[i].n_devices; k++)
			if (fn(c->vmms[i].devices[k], ud))
				return true;
	}
	return false;
}

void policy_foreach_device(const struct vlud_config *c, void (*fn)(const char *dev, void *ud), void *ud)
{
	for (size_t i = 0; i < c->n_vmms; i++)
		for (size_t k = 0; k < c->vmms[i].n_devices; k++) {
			bool seen = false;

			for (size_t j = 0; j <= i && !seen; j++)
				for (size_t m = 0; m < (j == i ? k : c->vmms[j].n_devices); m++)
					if (strcmp(c->vmms[j].devices[m], c->vmms[i].devices[k]) == 0) {
						seen = true;
						break;
					}
			if (!seen)
				fn(c->vmms[i].devices[k], ud);
		}
}

bool policy_name_allowed(const struct vlud_config *c, const struct peer_cred *p, const char *name)
{
	for (size_t i = 0; i < c->n_vmms; i++) {
		const struct vlud_vmm_rule *r = &c->vmms[i];

		if (!matches(&r->who, p))
			continue;
		if (r->n_names == 0)
			return true;
		for (size_t k = 0; k < r->n_names; k++)
			if (fnmatch(r->names[k], name, 0) == 0)
				return true;
	}
	return false;
}
