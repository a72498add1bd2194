/* Messages and argument parsing shared by the commands. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "tool.h"

const char *g_cmd = "ae";
char g_last_message[512];

static void vmessage(const char *fmt, va_list ap) {
    va_list copy;
    va_copy(copy, ap);
    vsnprintf(g_last_message, sizeof g_last_message, fmt, copy);
    va_end(copy);
    fprintf(stderr, "%s: ", g_cmd);
    vfprintf(stderr, fmt, ap);
}

int fail(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vmessage(fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return code;
}

int usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vmessage(fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see '%s --help')\n", g_cmd);
    return EXIT_USAGE;
}

int parse_u64(const char *opt, const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    /* strtoull skips spaces and takes a sign (" -1" is 2^64 - 1): digits only. */
    if (!s || *s < '0' || *s > '9') goto bad;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end) goto bad;
    *out = (uint64_t)v;
    return 0;
bad:
    usage_error("%s: '%s' is not a whole number", opt, s ? s : "");
    return -1;
}

int parse_size(const char *opt, const char *s, size_t lo, size_t hi, size_t *out) {
    uint64_t v;
    if (parse_u64(opt, s, &v)) return -1;
    if (v < lo || v > hi) {
        usage_error("%s: %s is out of range [%zu, %zu]", opt, s, lo, hi);
        return -1;
    }
    *out = (size_t)v;
    return 0;
}

int parse_double(const char *opt, const char *s, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    if (!s || !*s) goto bad;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v)) goto bad;
    if (v < lo || v > hi) {
        usage_error("%s: %s is out of range [%g, %g]", opt, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
bad:
    usage_error("%s: '%s' is not a number", opt, s ? s : "");
    return -1;
}

int parse_shape(const char *opt, const char *s, size_t shape[3]) {
    size_t v[3], n = 0;
    const char *p = s;
    while (n < 3) {
        char *end;
        errno = 0;
        if (*p < '0' || *p > '9') break;
        unsigned long long x = strtoull(p, &end, 10);
        if (errno || x == 0 || x > (1u << 24)) break;
        v[n++] = (size_t)x;
        p = end;
        if (*p == 'x' || *p == 'X') {
            p++;
            continue;
        }
        if (*p == '\0') {
            if (n == 2) {
                shape[0] = 1, shape[1] = v[0], shape[2] = v[1];
                return 0;
            }
            if (n == 3) {
                shape[0] = v[0], shape[1] = v[1], shape[2] = v[2];
                return 0;
            }
        }
        break;
    }
    usage_error("%s: '%s' is not a shape like 1x28x28 or 28x28", opt, s);
    return -1;
}

int parse_widths(const char *opt, const char *s, size_t *w, size_t cap, size_t *n) {
    size_t k = 0;
    const char *p = s;
    for (;;) {
        char *end;
        errno = 0;
        if (*p < '0' || *p > '9') break;
        unsigned long long x = strtoull(p, &end, 10);
        if (errno || x == 0 || x > (1u << 24) || k == cap) break;
        w[k++] = (size_t)x;
        p = end;
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p == '\0') {
            *n = k;
            return 0;
        }
        break;
    }
    usage_error("%s: '%s' is not a list of 1 to %zu widths like 256,32", opt, s, cap);
    return -1;
}

/* The library's names (ae_activation_name), any case, '-' for '_' too
 * ("leaky-relu"). */
int parse_activation(const char *opt, const char *s, ae_activation *out) {
    char name[32];
    size_t n = 0;
    for (; s[n] && n + 1 < sizeof name; n++)
        name[n] = s[n] == '-' ? '_' : (char)tolower((unsigned char)s[n]);
    name[n] = '\0';
    if (!s[n] && ae_activation_from_name(name, out) == AE_OK) return 0;
    char list[200] = "";
    const char *a;
    for (int i = 0; (a = ae_activation_name((ae_activation)i)) != NULL; i++)
        if (strlen(list) + strlen(a) + 3 < sizeof list) {
            strcat(list, i ? ", " : "");
            strcat(list, a);
        }
    usage_error("%s: unknown activation '%s' (%s)", opt, s, list);
    return -1;
}

int mul_size(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return -1;
    *out = a * b;
    return 0;
}

void *alloc_array(size_t n, size_t d, size_t elem) {
    size_t count, bytes;
    if (mul_size(n, d, &count) || mul_size(count, elem, &bytes)) return NULL;
    return malloc(bytes ? bytes : 1);
}

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int parse_choice(const char *opt, const char *s, const char *const *names, int *out) {
    for (int i = 0; names[i]; i++)
        if (strcasecmp(s, names[i]) == 0) {
            *out = i;
            return 0;
        }
    char list[200] = "";
    for (int i = 0; names[i] && strlen(list) + strlen(names[i]) + 3 < sizeof list; i++) {
        strcat(list, i ? ", " : "");
        strcat(list, names[i]);
    }
    usage_error("%s: unknown value '%s' (%s)", opt, s, list);
    return -1;
}

int getopt_error(char **argv, int c) {
    /* getopt_long leaves the offending word at argv[optind - 1]. */
    const char *arg = argv[optind - 1];
    if (c == ':') return usage_error("option '%s' needs a value", arg);
    if (optopt && optopt < 256) return usage_error("unknown option '-%c'", optopt);
    if (optopt) return usage_error("option '%s' takes no value", arg);
    return usage_error("unknown option '%s'", arg);
}

uint64_t tool_splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
