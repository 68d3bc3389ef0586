/*
 * `rpcqd keys`: an operator's commands on the API keys of a database
 * (auth.h), run against --database like `rpcqd migrate`:
 *   rpcqd keys create NAME --scope S... [--expires T] [--rate R] [--burst B]
 *   rpcqd keys list
 *   rpcqd keys limit NAME|PREFIX --rate R [--burst B]
 *   rpcqd keys revoke NAME|PREFIX
 * Every change is written to api_key_audit by the table's trigger, and every
 * rpcqd on the database sees it within a second.
 */
#ifndef RPCQ_KEYS_H
#define RPCQ_KEYS_H

/* argv: the words after "keys". Returns the exit status: 0, 1 when the
 * command failed, 2 for a usage error. */
int keys_main(int argc, char **argv);

#endif
