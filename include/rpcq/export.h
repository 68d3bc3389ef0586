/* Symbol visibility for librpcq: everything is hidden unless marked RPCQ_API. */
#ifndef RPCQ_EXPORT_H
#define RPCQ_EXPORT_H

#if defined(RPCQ_STATIC) || !defined(__GNUC__)
#define RPCQ_API
#else
#define RPCQ_API __attribute__((visibility("default")))
#endif

/* A status result a caller must look at. */
#if defined(__GNUC__)
#define RPCQ_NODISCARD __attribute__((warn_unused_result))
#define RPCQ_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define RPCQ_NODISCARD
#define RPCQ_PRINTF(fmt, args)
#endif

#endif
