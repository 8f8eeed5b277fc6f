/* mproc: queues (multiprocessing.Queue, SimpleQueue, JoinableQueue), pipes (Pipe, Connection)
 * and waiting on several of them (multiprocessing.connection.wait). See docs/queue.md.
 * A NaN timeout is MPROC_EINVAL; every call that waits also returns MPROC_EINTR after
 * mproc_interrupt() (docs/conventions.md). */
#ifndef MPROC_QUEUE_H
#define MPROC_QUEUE_H

#include <stdint.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- queues ------------------------------------------------------------------------------ */

/* A multi-producer multi-consumer FIFO of byte messages in shared memory. A queue made before a
 * fork is usable in the child; other processes open it by name or receive it over a socket. */
typedef struct mproc_queue mproc_queue_t;

/* Largest message a queue accepts unless opts->max_message says less (bytes). */
#define MPROC_QUEUE_MSG_MAX ((size_t)1 << 40)
/* Longest queue name, including the terminating NUL. */
#define MPROC_QUEUE_NAME_MAX 96

typedef struct mproc_queue_opts {
  size_t size;        /* sizeof(mproc_queue_opts_t); set by MPROC_QUEUE_OPTS_INIT */
  size_t maxsize;     /* most messages held at once (Python's maxsize); 0: no limit */
  size_t capacity;    /* bytes of the shared ring, rounded up to a power of two in 64 KiB..1 GiB;
                         0: 2 MiB. Messages over half of it go to shared memory of their own
                         (out of line), so a put never waits for a reader to make room. */
  size_t max_message; /* largest message put accepts (bytes); 0: MPROC_QUEUE_MSG_MAX */
} mproc_queue_opts_t;

#define MPROC_QUEUE_OPTS_INIT { sizeof(mproc_queue_opts_t), 0, 0, 0 }
/* Fill opts with defaults. Errors: MPROC_EINVAL (NULL). */
MPROC_API int mproc_queue_opts_init(mproc_queue_opts_t *opts);

/* Counters kept in the shared ring (all processes together). */
typedef struct mproc_queue_stats {
  size_t size;              /* sizeof(mproc_queue_stats_t); set by the caller */
  uint64_t puts;            /* messages completely put */
  uint64_t gets;            /* messages delivered by get/release */
  uint64_t producer_deaths; /* producers that died holding the producer side */
  uint64_t consumer_deaths; /* consumers that died holding the consumer side */
  uint64_t dropped;         /* partial messages discarded (producer died or put timed out) */
  uint64_t lost;            /* messages lost with a consumer that died while taking them */
  uint64_t grants;          /* a producer thread got the lock-free single-producer path */
  uint64_t revokes;         /* another producer took that path back (docs/queue.md) */
  uint64_t big_messages;    /* messages held out of line (too large for the ring), unread or
                               being read */
  uint64_t big_bytes;       /* bytes of shared memory those messages hold */
} mproc_queue_stats_t;

/* Make a queue. opts may be NULL. Free with mproc_queue_free().
 * Errors: MPROC_EINVAL (NULL out, bad opts), MPROC_ENOMEM, MPROC_EMFILE. */
MPROC_API int mproc_queue_new(mproc_queue_t **out, const mproc_queue_opts_t *opts);
/* A queue with no item limit and default capacity (multiprocessing.SimpleQueue). */
MPROC_API int mproc_simple_queue_new(mproc_queue_t **out);
/* A queue that counts unfinished tasks: mproc_queue_task_done() and mproc_queue_join(). */
MPROC_API int mproc_joinable_queue_new(mproc_queue_t **out, const mproc_queue_opts_t *opts);
/* Release this process's handle (the queue lives on in other processes). NULL is a no-op.
 * A pending reserve is cancelled and a pending peek left in the queue. Errors: MPROC_EBADF. */
MPROC_API int mproc_queue_free(mproc_queue_t *q);

/* Append a copy of len bytes (0 allowed). timeout in seconds: < 0 waits for room, 0 polls, > 0
 * waits that long (a streamed message that times out half-way is withdrawn).
 * Errors: MPROC_EFULL (poll), MPROC_ETIMEDOUT, MPROC_ECLOSED, MPROC_EMSGSIZE (over the limit),
 * MPROC_EINVAL (NULL data with len > 0), MPROC_EBADF. */
MPROC_API int mproc_queue_put(mproc_queue_t *q, const void *data, size_t len, double timeout);
/* Take the next message into buf (cap bytes; buf may be NULL when cap is 0) and store its size
 * in *out_len. Too small a buffer: MPROC_EMSGSIZE with the needed size in *out_len, message kept.
 * Errors: MPROC_EEMPTY (poll), MPROC_ETIMEDOUT, MPROC_ECLOSED (closed and drained),
 * MPROC_EMSGSIZE, MPROC_EINVAL, MPROC_EBADF. */
MPROC_API int mproc_queue_get(mproc_queue_t *q, void *buf, size_t cap, size_t *out_len,
                              double timeout);
/* Take the next message of any size into a buffer that the caller owns and releases with
 * free() (*out is non-NULL even for 0 bytes). Errors: as mproc_queue_get, MPROC_ENOMEM. */
MPROC_API int mproc_queue_get_alloc(mproc_queue_t *q, void **out, size_t *out_len,
                                    double timeout);

/* One piece of a message given to mproc_queue_putv(). */
typedef struct mproc_queue_part {
  const void *data;
  size_t len;
} mproc_queue_part_t;
/* Append the concatenation of n parts as one message, copied once, straight into the queue's
 * shared memory (a header and a large buffer need no joining first). As mproc_queue_put
 * otherwise. Errors: as mproc_queue_put, MPROC_EINVAL (NULL parts with n > 0, NULL data). */
MPROC_API int mproc_queue_putv(mproc_queue_t *q, const mproc_queue_part_t *parts, size_t n,
                               double timeout);

/* A message taken by mproc_queue_get_msg(), owned by the caller. */
typedef struct mproc_msg mproc_msg_t;
/* Take the next message without copying it when it was put out of line (larger than half the
 * ring, or 64 KiB and up while the ring was full): *out then holds that shared memory itself,
 * writable, until mproc_msg_free() returns it to the queue (also after the queue handle is
 * freed). Smaller messages are copied. Errors: as mproc_queue_get_alloc. */
MPROC_API int mproc_queue_get_msg(mproc_queue_t *q, mproc_msg_t **out, double timeout);
/* The message's bytes (writable: they are the caller's) and their number. NULL / 0 for NULL. */
MPROC_API void *mproc_msg_data(const mproc_msg_t *m);
MPROC_API size_t mproc_msg_size(const mproc_msg_t *m);
/* Release the message (its shared memory goes back to the queue). A message taken before a
 * fork is only unmapped in the child. NULL is a no-op. */
MPROC_API int mproc_msg_free(mproc_msg_t *m);

/* Zero-copy put: reserve len bytes in the ring (or, over half its capacity, in shared memory of
 * the message's own) and write them at *out, then mproc_queue_commit() (or _cancel()) from the
 * same thread. Other producers wait meanwhile. Errors: as mproc_queue_put, MPROC_EBUSY. */
MPROC_API int mproc_queue_reserve(mproc_queue_t *q, size_t len, void **out, double timeout);
/* Publish the first len bytes (<= reserved) of the reserved message.
 * Errors: MPROC_EINVAL (nothing reserved, len too big). */
MPROC_API int mproc_queue_commit(mproc_queue_t *q, size_t len);
/* Drop the reserved message. Errors: MPROC_EINVAL (nothing reserved). */
MPROC_API int mproc_queue_cancel(mproc_queue_t *q);
/* Zero-copy get: point *out at the next message in shared memory, then mproc_queue_release() it
 * from the same thread; other consumers wait meanwhile. Errors: as mproc_queue_get, MPROC_EBUSY. */
MPROC_API int mproc_queue_peek(mproc_queue_t *q, const void **out, size_t *out_len,
                               double timeout);
/* Remove the peeked message. Errors: MPROC_EINVAL (nothing peeked). */
MPROC_API int mproc_queue_release(mproc_queue_t *q);

/* Number of messages in the queue. Approximate while other processes put and get (and off by
 * one after a process died mid-operation). Errors: MPROC_EINVAL, MPROC_EBADF. */
MPROC_API int mproc_queue_qsize(const mproc_queue_t *q, size_t *out);
/* 1 if empty / full (maxsize reached, or under a quarter of the ring free), 0 if not, or a
 * negative error. Approximate, like qsize. */
MPROC_API int mproc_queue_empty(const mproc_queue_t *q);
MPROC_API int mproc_queue_full(const mproc_queue_t *q);
/* Close the queue for every process: puts fail with MPROC_ECLOSED, gets drain what is left and
 * then fail with MPROC_ECLOSED; blocked callers wake. Idempotent. Errors: MPROC_EBADF. */
MPROC_API int mproc_queue_close(mproc_queue_t *q);
/* 1 once closed, 0 if not, or a negative error. */
MPROC_API int mproc_queue_is_closed(const mproc_queue_t *q);

/* Joinable queues: mark one taken message as processed. Errors: MPROC_EINVAL (more task_done
 * calls than puts, or not a joinable queue). */
MPROC_API int mproc_queue_task_done(mproc_queue_t *q);
/* Wait until every message put has been marked done. Errors: MPROC_ETIMEDOUT, MPROC_EINVAL. */
MPROC_API int mproc_queue_join(mproc_queue_t *q, double timeout);

/* Copy the shared counters into *out (out->size must be set). Errors: MPROC_EINVAL. */
MPROC_API int mproc_queue_stats(const mproc_queue_t *q, mproc_queue_stats_t *out);

/* A file descriptor (owned by the handle) that is readable while a message may be waiting or the
 * queue is closed, for poll()/libuv: on readiness, get with timeout 0 until MPROC_EEMPTY. Once
 * asked for, each put that finds the fd idle also write()s a byte to it (~1 us). */
MPROC_API int mproc_queue_fileno(mproc_queue_t *q);

/* Write the queue's name into buf (cap >= MPROC_QUEUE_NAME_MAX). Another process of the same
 * user opens it with mproc_queue_open() while this handle stays open. Errors: MPROC_ERANGE. */
MPROC_API int mproc_queue_name(const mproc_queue_t *q, char *buf, size_t cap);
/* Open a queue by name (see mproc_queue_name). Free with mproc_queue_free().
 * Errors: MPROC_EINVAL (not a queue name), MPROC_ENOENT (its process or queue is gone),
 * MPROC_EACCES. */
MPROC_API int mproc_queue_open(mproc_queue_t **out, const char *name);
/* Send the queue over a connected Unix socket (e.g. mproc_conn_socket(); a connection's
 * mproc_conn_fileno() stands for its socket) as one message with its fds (SCM_RIGHTS).
 * Errors: MPROC_EPIPE, MPROC_EBADF. */
MPROC_API int mproc_queue_send_handle(const mproc_queue_t *q, int sockfd);
/* Receive a queue sent by mproc_queue_send_handle(). Free with mproc_queue_free().
 * Errors: MPROC_EPIPE (peer closed), MPROC_EINVAL (not a queue message). */
MPROC_API int mproc_queue_recv_handle(mproc_queue_t **out, int sockfd);

/* ---- pipes --------------------------------------------------------------------------------- */

/* One end of a pipe (multiprocessing.connection.Connection): whole byte messages. Made before a
 * fork, both ends are usable in the child (close the end a process does not use). */
typedef struct mproc_conn mproc_conn_t;

/* Make a connected pair. duplex: both ends send and receive; otherwise *out_a only receives and
 * *out_b only sends (as Python's Pipe(duplex=False)). Free both with mproc_conn_free().
 * Errors: MPROC_EINVAL (NULL out), MPROC_EMFILE. */
MPROC_API int mproc_pipe(mproc_conn_t **out_a, mproc_conn_t **out_b, int duplex);
/* Send len bytes as one message; blocks while the pipe is full (a peer not reading). Never
 * raises SIGPIPE.
 * Errors: MPROC_EPIPE (peer closed), MPROC_EPERM (receive-only end), MPROC_ECLOSED,
 * MPROC_EINVAL, MPROC_EBADF. */
MPROC_API int mproc_conn_send_bytes(mproc_conn_t *c, const void *data, size_t len);
/* The same, waiting at most timeout seconds (as mproc_queue_put) for the peer to make room.
 * A message that fits in the pipe's ring (256 KiB) waits for room for all of it, so a timeout
 * never leaves it half sent; a longer one streams, and the timeout bounds only the wait before
 * it begins. Errors: as mproc_conn_send_bytes, MPROC_ETIMEDOUT (nothing was sent). */
MPROC_API int mproc_conn_send_bytes_timeout(mproc_conn_t *c, const void *data, size_t len,
                                            double timeout);
/* Receive one message into buf; *out_len gets its size. timeout as mproc_queue_get. Too small
 * a buffer: MPROC_EMSGSIZE with the size in *out_len, message kept. Errors: MPROC_EPIPE (peer
 * closed, nothing left), MPROC_ETIMEDOUT, MPROC_EPERM (send-only end), MPROC_ECLOSED. */
MPROC_API int mproc_conn_recv_bytes(mproc_conn_t *c, void *buf, size_t cap, size_t *out_len,
                                    double timeout);
/* Receive one message of any size into a buffer the caller releases with free().
 * Errors: as mproc_conn_recv_bytes, MPROC_ENOMEM. */
MPROC_API int mproc_conn_recv_bytes_alloc(mproc_conn_t *c, void **out, size_t *out_len,
                                          double timeout);
/* 1 if a message (or end of file) is ready to receive within timeout seconds, 0 if not.
 * Errors: MPROC_ECLOSED, MPROC_EPERM, MPROC_EBADF. */
MPROC_API int mproc_conn_poll(mproc_conn_t *c, double timeout);
/* A fd (owned by the handle) for poll()/libuv: readable while a message waits or the peer is
 * closed (a send-only end: its socket). Once asked for, sends to this end also signal it (a
 * write(), ~1-2 us, when the fd was idle). Errors: MPROC_ECLOSED. */
MPROC_API int mproc_conn_fileno(const mproc_conn_t *c);
/* The end's Unix socket (owned by the handle), for passing fds to the peer, e.g. with
 * mproc_queue_send_handle(). No message data travels on it. Errors: MPROC_ECLOSED. */
MPROC_API int mproc_conn_socket(const mproc_conn_t *c);
/* The fds of this end (at most 4) into out (may be NULL when cap is 0); returns how many. Pass
 * them to a SPAWN child (mproc_process_opts_t.fds) with the token of mproc_conn_export().
 * Errors: MPROC_ECLOSED, MPROC_EBADF, MPROC_EINVAL. */
MPROC_API int mproc_conn_fds(const mproc_conn_t *c, int *out, size_t cap);
/* Write a token naming this end's fds into buf (MPROC_CONN_TOKEN_MAX is enough); returns its
 * length. Errors: MPROC_ERANGE, MPROC_ECLOSED, MPROC_EBADF. */
MPROC_API int mproc_conn_export(const mproc_conn_t *c, char *buf, size_t cap);
#define MPROC_CONN_TOKEN_MAX 128
/* In a process holding the end's fds at the same numbers (a spawned child given them): make a
 * handle that takes them over. Free with mproc_conn_free(). Errors: MPROC_EINVAL (not a token),
 * MPROC_EBADF (the fds are not here). */
MPROC_API int mproc_conn_attach(mproc_conn_t **out, const char *token);
/* Close this end (the peer then sees end of file); the handle stays valid until freed. */
MPROC_API int mproc_conn_close(mproc_conn_t *c);
/* Close (if needed) and release the handle. NULL is a no-op. Errors: MPROC_EBADF. */
MPROC_API int mproc_conn_free(mproc_conn_t *c);

/* ---- waiting on several objects --------------------------------------------------------------- */

typedef enum mproc_wait_kind {
  MPROC_WAIT_CONN = 1,    /* handle: mproc_conn_t*; ready: a message or end of file */
  MPROC_WAIT_QUEUE = 2,   /* handle: mproc_queue_t*; ready: a message or closed */
  MPROC_WAIT_PROCESS = 3, /* handle: mproc_process_t*; ready: the process ended */
  MPROC_WAIT_FD = 4       /* fd: any file descriptor; ready: readable */
} mproc_wait_kind_t;

typedef struct mproc_wait_item {
  int kind;     /* mproc_wait_kind_t */
  void *handle; /* the object (unused for MPROC_WAIT_FD) */
  int fd;       /* for MPROC_WAIT_FD */
  int ready;    /* out: 1 when ready, else 0 */
} mproc_wait_item_t;

/* Wait until at least one item is ready or timeout seconds pass (< 0: forever); return how many
 * are ready (0 on timeout) and mark them. Errors: MPROC_EINVAL (bad kind, NULL items with n > 0),
 * MPROC_EBADF (a freed handle), MPROC_ECLOSED (a closed conn). */
MPROC_API int mproc_wait(mproc_wait_item_t *items, size_t n, double timeout);

#ifdef __cplusplus
}
#endif
#endif /* MPROC_QUEUE_H */
