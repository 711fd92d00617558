/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vlud-iommufd.h - the iommufd uAPI vlud uses, copied from Linux 7.3's include/uapi/linux/iommufd.h
 * (IOMMU_IOAS_CHANGE_PROCESS and IOMMU_IOAS_MAP_FILE are Linux >= 6.13).  The build host's headers
 * (Debian 12, 6.1) have no iommufd.h with these, so vlud's own names (VLUD_ prefix, no clash with a newer
 * header).  Support is always detected at run time (the CHANGE_PROCESS probe, docs/IOMMUFD.md), never
 * assumed from these definitions.
 */
#ifndef VLUD_IOMMUFD_H
#define VLUD_IOMMUFD_H

#include <linux/types.h>
#include <sys/ioctl.h>

#define VLUD_IOMMUFD_TYPE (';')
/* struct iommu_ioas_change_process { __u32 size; __u32 __reserved; } */
struct vlud_iommu_ioas_change_process {
	__u32 size;
	__u32 __reserved;
};
#define VLUD_IOMMU_IOAS_CHANGE_PROCESS _IO(VLUD_IOMMUFD_TYPE, 0x92)

/* struct iommu_option (IOMMU_OPTION_RLIMIT_MODE: object_id 0; GET needs no capability) */
struct vlud_iommu_option {
	__u32 size;
	__u32 option_id;
	__u16 op;
	__u16 __reserved;
	__u32 object_id;
	__aligned_u64 val64;
};
#define VLUD_IOMMU_OPTION _IO(VLUD_IOMMUFD_TYPE, 0x87)
#define VLUD_IOMMU_OPTION_RLIMIT_MODE 0
#define VLUD_IOMMU_OPTION_OP_GET 1

#endif
