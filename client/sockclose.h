/*
 * nng_close bounded in time. nng 1.5.2's TCP transport can leave a socket's
 * close waiting forever when a receive completes while its pipe is being
 * closed (nanomsg/nng#1636, fixed after 1.5.2): a subscriber closed while
 * messages streamed in hung in nng_close about once in a hundred closes,
 * and every close after it waited on nng's wedged reaper too. The close
 * runs on a thread of its own; the caller waits for it at most
 * SOCK_CLOSE_WAIT_MS (SOCK_CLOSE_WEDGED_MS once a close has hung in this
 * process) and goes on without it, the socket and that thread left to the
 * process: a command exits instead of hanging, a long-running caller leaks
 * one socket instead of a thread of its own.
 */
#ifndef RPCQ_SOCKCLOSE_H
#define RPCQ_SOCKCLOSE_H

#include <nng/nng.h>

#define SOCK_CLOSE_WAIT_MS 2000
#define SOCK_CLOSE_WEDGED_MS 100

void sock_close_bounded(nng_socket sock);

#endif
