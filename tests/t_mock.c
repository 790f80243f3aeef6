/* t_mock.c - see t_mock.h. Only starts, addresses and scripts the mock; the tests own what it
 * answers and when they stop it. */
#include "t_mock.h"

#include <stdio.h>

struct mock_server *t_mock_start_opts(const struct mock_options *o, char *base, size_t n) {
    struct mock_options defaults;
    if (o == NULL) {
        mock_options_init(&defaults);
        o = &defaults;
    }
    struct mock_server *m;
    char err[256];
    if (mock_server_start(o, &m, err, sizeof err) != 0) {
        fprintf(stderr, "mock_server_start: %s\n", err);
        return NULL;
    }
    int len = snprintf(base, n, "%s/v1", mock_server_url(m));
    if (len < 0 || (size_t)len >= n) {
        fprintf(stderr, "t_mock_start: %zu bytes too few for the base URL of %s\n", n,
                mock_server_url(m));
        mock_server_stop(m);
        return NULL;
    }
    return m;
}

struct mock_server *t_mock_start(const char *config_text, double time_scale, char *base,
                                 size_t n) {
    struct mock_options o;
    mock_options_init(&o);
    o.config_text = config_text;
    o.time_scale = time_scale;
    return t_mock_start_opts(&o, base, n);
}

void t_mock_script(struct mock_server *m, const char *script) {
    char err[256];
    if (mock_server_script_faults(m, script, err, sizeof err) != 0)
        fail_msg("mock_server_script_faults(\"%s\"): %s", script, err);
}
