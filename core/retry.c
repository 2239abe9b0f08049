/*
 * retry.c - retry decisions shared by our HTTP clients (see retry.h).
 */
#include "retry.h"

#include <ctype.h>
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

int ctx_retry_status(long status)
{
    return status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
}

int64_t ctx_retry_after_ms(const char *value, int64_t now_ms)
{
    char buf[96], *end;
    size_t n;
    long long v;
    time_t t;

    if (!value)
        return -1;
    while (*value == ' ' || *value == '\t')
        value++;
    n = strlen(value);
    while (n && isspace((unsigned char)value[n - 1]))
        n--;
    if (!n || n >= sizeof buf)
        return -1;
    memcpy(buf, value, n);
    buf[n] = '\0';
    if (isdigit((unsigned char)buf[0])) {
        v = strtoll(buf, &end, 10);
        if (*end || v < 0)
            return -1;
        return v > INT64_MAX / 1000 ? INT64_MAX : v * 1000;
    }
    if ((t = curl_getdate(buf, NULL)) < 0)
        return -1;
    v = (long long)t * 1000 - now_ms;
    return v < 0 ? 0 : v;
}

void ctx_backoff_init(ctx_backoff *b, int64_t base_ms, int64_t max_ms, uint64_t seed)
{
    b->next_ms = base_ms > 0 ? base_ms : 0;
    b->max_ms = max_ms > b->next_ms ? max_ms : b->next_ms;
    b->rand = seed ? seed : 0x9E3779B97F4A7C15ull;
}

int64_t ctx_backoff_next(ctx_backoff *b)
{
    int64_t step = b->next_ms, d;

    b->rand ^= b->rand << 13;
    b->rand ^= b->rand >> 7;
    b->rand ^= b->rand << 17;
    d = step / 2 + (int64_t)(b->rand % (uint64_t)(step / 2 + 1));
    b->next_ms = step > b->max_ms / 2 ? b->max_ms : step * 2;
    return d;
}
