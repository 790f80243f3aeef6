/*
 * cli.c - the cx-mock command line (mock_main): flags, --help, the config file, starting the
 * server and waiting for SIGINT/SIGTERM (SIGHUP reloads the config file). Every config key is
 * also a long flag (--key VALUE or --key=VALUE, dashes or underscores), so the flag list and the
 * config file cannot drift apart. It does not serve anything itself.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mock_internal.h"

static void usage(FILE *f)
{
    fputs(
"usage: cx-mock [options]\n"
"A configurable-latency mock LLM server speaking the OpenAI (POST /v1/chat/completions) and\n"
"Anthropic (POST /v1/messages) APIs, streaming and not, with GET /v1/models, /health,\n"
"/metrics (Prometheus), /stats (JSON) and /admin/{config,reset,faults}.\n"
"\n"
"Server:\n"
"  --host ADDR            listen address, IPv4 or IPv6 literal (default 127.0.0.1)\n"
"  --port N               TCP port; 0 picks a free one (default 0)\n"
"  --port-file PATH       write the chosen port here once listening (temp file + rename)\n"
"  --threads N            libmicrohttpd worker threads (default 2)\n"
"  --connection-limit N   most open connections (default 20000)\n"
"  --connection-timeout S close idle connections after S seconds (default 60)\n"
"  --config FILE          read settings from FILE (`key = value` lines, '#' comments; the keys\n"
"                         are the long flags below without the dashes); flags given after it\n"
"                         override it; SIGHUP re-reads it\n"
"  --fault-script TEXT    scripted faults, e.g. \"next 3 429; next 1 ok; next 2 reset\"\n"
"  --fixtures FILE        canned replies: a JSON file (or directory) of rules matched in\n"
"                         order (README \"Fixtures\"); POST /admin/fixtures/reload or SIGHUP\n"
"                         re-reads it\n"
"  --strict               with fixtures/replay: an unmatched API request gets a 404 naming\n"
"                         the closest rule instead of generated content\n"
"  --record DIR           proxy every API request to --upstream (the client's key passed\n"
"                         through, never written) and store each exchange in DIR\n"
"  --upstream URL         the real API for --record, e.g. https://api.openai.com\n"
"  --replay DIR           serve the exchanges recorded in DIR (route, model and body match)\n"
"  --verbose              log libmicrohttpd errors to stderr\n"
"  --help, --version\n"
"\n"
"Latency (durations: 0, 500us, 150ms, 2s, 1m; a bare number is ms):\n"
"  --latency D            base latency (non-streaming: whole reply; streams: first token\n"
"                         unless --ttft) (default 0)\n"
"  --dist NAME            fixed | uniform | normal | lognormal (default fixed)\n"
"  --latency-max D        uniform: upper bound (--latency is the lower bound)\n"
"  --stddev D             normal: standard deviation (--latency is the mean)\n"
"  --sigma F              lognormal: shape (--latency is the median) (default 0.5)\n"
"  --ttft D               streams: time to first token (default: --latency)\n"
"  --itl D                streams: inter-token latency (default 0)\n"
"  --itl-jitter F         streams: each gap is itl * (1 +- F), deterministic (default 0)\n"
"  --max-latency D        cap on any sampled delay before scaling (default 600s)\n"
"  --chat.KEY V, --messages.KEY V, --models.KEY V\n"
"                         per-route override of latency, dist, latency_max, stddev, sigma,\n"
"                         ttft, itl, itl_jitter (/v1/models has no delay unless models.latency)\n"
"  --time-scale F         multiply every delay by F (0.01: 2s becomes 20ms) (default 1)\n"
"  --seed N               seed of every deterministic choice (default 0)\n"
"  --max-running N        at most N API requests running; the rest queue FIFO (0 = no cap)\n"
"  --max-queue N          past N queued answer 503 (OpenAI) / 529 (Anthropic) (0 = no cap)\n"
"  --load-factor F        stretch latency by 1 + F * (running - 1) (default 0)\n"
"\n"
"Limits and content:\n"
"  --rate-rps F           server-side rate limit, requests/s (0 = off); 429 past it\n"
"  --rate-burst N         token-bucket burst (default max(1, rate-rps))\n"
"  --max-body N           request bodies over N bytes get 413 (default 1048576)\n"
"  --pad-to N             pad each reply text to at least N bytes (default 0)\n"
"  --model NAME           model name when a request names none / in /v1/models (mock-1)\n"
"  --required-key K       accept only this API key (Bearer or x-api-key); default any\n"
"\n"
"Faults (probabilities 0..1, first hit wins in this order; or scripted):\n"
"  --fault.429 P --fault.500 P --fault.502 P --fault.503 P --fault.529 P --fault.reset P\n"
"  --fault.stall P --fault.malformed P --fault.cut P --fault.disconnect P --fault.corrupt P\n"
"  --fault.duplicate P --fault.truncate P --fault.dangerous P\n"
"  --stall D              how long a stall holds the request (default 600s, not scaled)\n"
"  --cut-after N          'cut' ends a stream after N tokens (default 3)\n"
"  --disconnect-after D   'disconnect' closes after D (scaled; default 50ms)\n"
"  --retry-after D        Retry-After of 429/503/529 faults (default 1s, not scaled)\n"
"\n"
"Slow clients (not scaled; 0 = off):\n"
"  --header-timeout D     close a connection whose request headers are not complete D after\n"
"                         it opened or its last request ended (default 10s)\n"
"  --body-timeout D       close a connection whose body is not complete D after its headers\n"
"                         (default 10s)\n"
"\n"
"Admin while running: POST /admin/config {\"latency\":\"100ms\",\"fault.429\":0.1},\n"
"POST /admin/reset, POST /admin/faults {\"script\":\"next 3 429\"} | {\"next\":3,\"fault\":\"429\"}\n"
"| {\"clear\":true}, GET /admin/config, GET /admin/faults. See the README for details.\n"
"\n"
"Exit status:\n"
"  0  stopped by SIGINT or SIGTERM (the port file is removed), or --help / --version\n"
"  1  internal error: out of memory, a thread could not start\n"
"  2  usage: unknown flag, missing or bad flag value\n"
"  3  the --config file cannot be read\n"
"  4  invalid settings: a bad key or value in the config file, a bad host or port\n"
"  5  cannot listen on host:port (in use, not permitted)\n"
"  6  the --port-file cannot be written\n"
"  7  a bad --fault-script\n"
"  8  a bad --fixtures file or --replay directory, or --record cannot start\n",
        f);
}

/* Exit statuses (listed in --help). */
enum { EXIT_OK = 0, EXIT_INTERNAL = 1, EXIT_USAGE = 2, EXIT_CONFIG_READ = 3,
       EXIT_SETTINGS = 4, EXIT_LISTEN = 5, EXIT_PORT_FILE = 6, EXIT_SCRIPT = 7,
       EXIT_FIXTURES = 8 };

static int start_exit_status(int rc)
{
    switch (rc) {
    case MOCK_EINVAL:
        return EXIT_SETTINGS;
    case MOCK_ELISTEN:
        return EXIT_LISTEN;
    case MOCK_EPORTFILE:
        return EXIT_PORT_FILE;
    case MOCK_EFIXTURES:
        return EXIT_FIXTURES;
    default:
        return EXIT_INTERNAL;
    }
}

static char *read_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        mock__err(err, errlen, "config: cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    struct mock_buf b = {0};
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        mock__buf_add(&b, chunk, n);
    int bad = ferror(f);
    fclose(f);
    if (bad || b.oom) {
        mock__buf_free(&b);
        mock__err(err, errlen, "config: cannot read %s", path);
        return NULL;
    }
    if (!b.p)
        mock__buf_add(&b, "", 0);
    return b.p;
}

static int add_line(struct mock_buf *cfg, const char *k, const char *v)
{
    if (strchr(v, '\n'))
        return -1;
    mock__buf_fmt(cfg, "%s = %s\n", k, v);
    return 0;
}

int mock_main(int argc, char **argv)
{
    struct mock_options o;
    mock_options_init(&o);
    struct mock_buf cfg = {0};
    const char *config_path = NULL, *script = NULL;
    char err[512];
    int rc = EXIT_USAGE;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            mock__buf_free(&cfg);
            return 0;
        }
        if (!strcmp(a, "--version")) {
            puts("cx-mock 0.1.0");
            mock__buf_free(&cfg);
            return 0;
        }
        if (!strcmp(a, "--verbose")) {
            o.quiet = 0;
            continue;
        }
        if (!strcmp(a, "--quiet")) {
            o.quiet = 1;
            continue;
        }
        if (!strcmp(a, "--strict")) {
            o.strict = 1;
            continue;
        }
        if (strncmp(a, "--", 2)) {
            fprintf(stderr, "cx-mock: unexpected argument '%s' (see --help)\n", a);
            goto out;
        }
        char key[128];
        const char *val;
        const char *eq = strchr(a, '=');
        if (eq) {
            snprintf(key, sizeof key, "%.*s", (int)(eq - a - 2), a + 2);
            val = eq + 1;
        } else {
            snprintf(key, sizeof key, "%s", a + 2);
            if (i + 1 >= argc) {
                fprintf(stderr, "cx-mock: %s needs a value (see --help)\n", a);
                goto out;
            }
            val = argv[++i];
        }
        for (char *p = key; *p; p++)
            if (*p == '_')
                *p = '-';
        uint64_t u;
        if (!strcmp(key, "host")) {
            o.host = val;
        } else if (!strcmp(key, "port")) {
            if (mock__parse_u64(val, &u) < 0 || u > 65535) {
                fprintf(stderr, "cx-mock: --port: '%s' is not a port (0-65535)\n", val);
                goto out;
            }
            o.port = (int)u;
        } else if (!strcmp(key, "port-file")) {
            o.port_file = val;
        } else if (!strcmp(key, "threads") || !strcmp(key, "connection-limit") ||
                   !strcmp(key, "connection-timeout")) {
            if (mock__parse_u64(val, &u) < 0 || u < 1 || u > 1000000) {
                fprintf(stderr, "cx-mock: --%s: '%s' is not a positive integer\n", key, val);
                goto out;
            }
            if (key[0] == 't')
                o.threads = (unsigned)u;
            else if (!strcmp(key, "connection-limit"))
                o.connection_limit = (unsigned)u;
            else
                o.connection_timeout_s = (unsigned)u;
        } else if (!strcmp(key, "config")) {
            /* The file comes first; flags before or after --config both override it. */
            config_path = val;
        } else if (!strcmp(key, "fault-script")) {
            script = val;
        } else if (!strcmp(key, "fixtures")) {
            o.fixtures_path = val;
        } else if (!strcmp(key, "replay")) {
            o.replay_dir = val;
        } else if (!strcmp(key, "record")) {
            o.record_dir = val;
        } else if (!strcmp(key, "upstream")) {
            o.upstream = val;
        } else {
            /* Any settings key: validated now against a scratch copy for a clear message. */
            struct mock_settings scratch;
            mock__settings_init(&scratch);
            if (mock__settings_set(&scratch, key, val, err, sizeof err) < 0) {
                fprintf(stderr, "cx-mock: --%s: %s\n", key, err);
                goto out;
            }
            if (add_line(&cfg, key, val) < 0) {
                fprintf(stderr, "cx-mock: --%s: value contains a newline\n", key);
                goto out;
            }
        }
    }
    char *file_text = NULL;
    if (config_path) {
        file_text = read_file(config_path, err, sizeof err);
        if (!file_text) {
            fprintf(stderr, "cx-mock: %s\n", err);
            rc = EXIT_CONFIG_READ;
            goto out;
        }
    }
    struct mock_buf all = {0};
    if (file_text)
        mock__buf_fmt(&all, "%s\n", file_text);
    if (cfg.p)
        mock__buf_str(&all, cfg.p);
    mock__buf_add(&all, "", 0);
    free(file_text);
    if (all.oom) {
        fprintf(stderr, "cx-mock: out of memory\n");
        mock__buf_free(&all);
        rc = EXIT_INTERNAL;
        goto out;
    }
    o.config_text = all.p;

    /* Block the signals before any thread starts so that only sigwait below sees them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct mock_server *s;
    int src = mock_server_start(&o, &s, err, sizeof err);
    if (src < 0) {
        fprintf(stderr, "cx-mock: %s%s%s\n", config_path && src == MOCK_EINVAL ? config_path : "",
                config_path && src == MOCK_EINVAL ? ": " : "", err);
        mock__buf_free(&all);
        rc = start_exit_status(src);
        goto out;
    }
    if (script && mock_server_script_faults(s, script, err, sizeof err) < 0) {
        fprintf(stderr, "cx-mock: --fault-script: %s\n", err);
        mock_server_stop(s);
        mock__buf_free(&all);
        rc = EXIT_SCRIPT;
        goto out;
    }
    printf("cx-mock listening on %s\n", mock_server_url(s));
    fflush(stdout);
    for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig != SIGHUP)
            break;
        if (o.fixtures_path || o.replay_dir) {
            if (mock_server_load_fixtures(s, NULL, err, sizeof err) < 0)
                fprintf(stderr, "cx-mock: fixtures reload failed (old ones kept): %s\n", err);
            else
                fprintf(stderr, "cx-mock: reloaded fixtures\n");
        }
        if (!config_path)
            continue;
        char *t = read_file(config_path, err, sizeof err);
        if (!t || mock_server_configure(s, t, err, sizeof err) < 0)
            fprintf(stderr, "cx-mock: reload of %s failed: %s\n", config_path, err);
        else
            fprintf(stderr, "cx-mock: reloaded %s\n", config_path);
        free(t);
    }
    mock_server_stop(s);
    mock__buf_free(&all);
    rc = EXIT_OK;
out:
    mock__buf_free(&cfg);
    return rc;
}
