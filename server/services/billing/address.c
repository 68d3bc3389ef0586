/* The e-mail address rule (address.h). */
#include "address.h"

int mail_addr_check(const char *a, size_t n, int dotted_domain)
{
	const char *at = NULL;
	int dots = 0;
	if (n == 0 || n > 254)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)a[i];
		int first = i == 0 || a[i - 1] == '@', last = i + 1 == n || a[i + 1] == '@';
		if (c < 0x21 || c > 0x7e || c == '"' || c == '(' || c == ')' || c == ',' || c == ':' || c == ';' ||
		    c == '<' || c == '>' || c == '[' || c == '\\' || c == ']')
			return 0;
		if (c == '@') {
			if (at != NULL || first || last)
				return 0;
			at = a + i;
		} else if (c == '.') {
			if (first || last || a[i + 1] == '.')
				return 0;
			dots += at != NULL;
		}
	}
	return at != NULL && (!dotted_domain || dots > 0);
}
