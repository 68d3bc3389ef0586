/*
 * The e-mail address rule that the import (debt.c) and the sender
 * (mail_message.c, mail_send.c) share, in billing_domain so both link it.
 */
#ifndef RPCQ_BILLING_ADDRESS_H
#define RPCQ_BILLING_ADDRESS_H

#include <stddef.h>

/* The one address rule, a[0..n): 1 if it is an addr-spec local@domain of at
 * most 254 bytes, every byte printable ASCII other than the specials
 * "(),:;<>[\] (so no spaces, quotes or control characters), exactly one '@',
 * and both parts dot-atoms: not empty, no leading or trailing '.', no "..".
 * With dotted_domain, the domain must also hold a '.' ("a@b" is refused).
 * Recipients are checked with dotted_domain (mail_addr_valid): the import
 * (debt.c) rejects a row whose email fails this very check, so every debt
 * imported has an address the sender takes. The From is checked without it
 * (billing@localhost is the default). Pure, thread-safe. */
int mail_addr_check(const char *a, size_t n, int dotted_domain);

#endif
