#!/bin/sh
# rig-nonowner: the non-owner matrix (kernel-facts.md section 10).  A forked child that receives the fd
# over SCM_RIGHTS, and the owner after exec(), may query, SUSPEND/RESUME, SET_BACKEND_FEATURES and
# reset the device (SET_STATUS 0), but get EPERM for vring ioctls, EFAULT for IOTLB writes and EBUSY for
# SET_OWNER and a second open.  In PA mode the datapath keeps working for the exec'ed image.
# flavour: debian
# modules: stock
# use_va: 0
# devices: 1
# timeout: 180
vdpatest nonowner
