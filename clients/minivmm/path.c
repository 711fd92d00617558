/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * path.c - which live-update path a device allows (pure; unit-tested).
 *
 *   A  needs SUSPEND, RESUME and NEW_OWNER
 *   B  needs SUSPEND, NEW_OWNER and IOTLB_PERSIST (the reset must keep the device's map)
 *   C  needs SUSPEND (without it the ring state cannot be read consistently: refused, not disruptive)
 * Auto picks the first that works in the order A, B, C.  Returns 0 with the reason when none does.
 */
#include "minivmm.h"

char mv_choose_path(uint64_t off, char forced, const char **ret_reason)
{
	bool susp = off & MV_BF(SUSPEND), res = off & MV_BF(RESUME), no = off & MV_BF(NEW_OWNER),
	     pers = off & MV_BF(IOTLB_PERSIST);
	const char *why;
	char p = 0;

	switch (forced) {
	case 'A':
		if (susp && res && no)
			p = 'A', why = "forced A; device offers NEW_OWNER, SUSPEND and RESUME";
		else
			why = "path A needs NEW_OWNER, SUSPEND and RESUME";
		break;
	case 'B':
		if (susp && no && pers)
			p = 'B', why = "forced B; device offers NEW_OWNER, SUSPEND and IOTLB_PERSIST";
		else
			why = "path B needs NEW_OWNER, SUSPEND and IOTLB_PERSIST";
		break;
	case 'C':
		if (susp)
			p = 'C', why = "forced C; device offers SUSPEND";
		else
			why = "path C needs SUSPEND (refusing a disruptive update)";
		break;
	default:
		if (susp && res && no)
			p = 'A', why = "auto: NEW_OWNER and RESUME offered";
		else if (susp && no && pers)
			p = 'B', why = "auto: NEW_OWNER without RESUME, IOTLB_PERSIST offered";
		else if (susp)
			p = 'C', why = "auto: no NEW_OWNER (stock kernel): reopen and re-pin";
		else
			why = "no SUSPEND: refusing a disruptive update";
		break;
	}
	if (ret_reason)
		*ret_reason = why;
	return p;
}
