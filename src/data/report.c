/* Error reporting shared by the dataset readers. */
#include <stdio.h>
#include <string.h>

#include "data.h"

/* Longer paths are shown by their tail. */
#define NAME_SHOWN 160

void ae_src_name_init(ae_src_name *s, ae_errbuf *e, const char *name) {
    size_t n = strlen(name);
    s->e = e;
    s->ellipsis = n > NAME_SHOWN ? "..." : "";
    s->name = n > NAME_SHOWN ? name + n - NAME_SHOWN : name;
}

ae_status ae_src_fail(const ae_src_name *s, ae_status code, const char *fmt, ...) {
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return ae_error(s->e, code, "%s%s: %s", s->ellipsis, s->name, what);
}
