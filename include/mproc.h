/* mproc: a native multiprocessing runtime. The one header to include. */
#ifndef MPROC_H
#define MPROC_H

#include "mproc/common.h"
#include "mproc/process.h"
#include "mproc/pool.h"
#include "mproc/queue.h"
#include "mproc/shm.h"
#include "mproc/sync.h"

#endif /* MPROC_H */
