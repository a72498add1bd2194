#include <stdio.h>
#include <string.h>

#include "core.h"
#include "libae/version.h"

const char *ae_status_name(ae_status code) {
    switch (code) {
#define AE_NAME_CASE_(name, value, desc) \
    case name:                           \
        return #name;
        AE_STATUS_MAP(AE_NAME_CASE_)
#undef AE_NAME_CASE_
    }
    return "AE_UNKNOWN_STATUS";
}

const char *ae_status_string(ae_status code) {
    switch (code) {
#define AE_DESC_CASE_(name, value, desc) \
    case name:                           \
        return desc;
        AE_STATUS_MAP(AE_DESC_CASE_)
#undef AE_DESC_CASE_
    }
    return "unknown status code";
}

const char *ae_version_string(void) { return AE_VERSION_STRING; }

uint32_t ae_version_number(void) { return AE_VERSION_NUMBER; }

ae_status ae_verror(ae_errbuf *e, ae_status code, const char *fmt, va_list ap) {
    if (e) {
        int n = vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        if (n < 0) snprintf(e->msg, sizeof e->msg, "%s", ae_status_string(code));
    }
    return code;
}

ae_status ae_error(ae_errbuf *e, ae_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    ae_verror(e, code, fmt, ap);
    va_end(ap);
    return code;
}

ae_errtext ae_sys_error(int err) {
    ae_errtext t;
    if (strerror_r(err, t.s, sizeof t.s) != 0) snprintf(t.s, sizeof t.s, "error %d", err);
    return t;
}
