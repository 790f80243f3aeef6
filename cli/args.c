/*
 * cli/args.c - the cx command line: option parsing, durations and the --help text.
 *
 * Options may appear before or after the command and between positional arguments; "--" ends
 * the options. Every error names the argument that was wrong. This file does not read the
 * environment (config.c does) and does not run anything.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"

static const char *const k_commands[] = {"install", "diagnose", "hwcheck", "cache",
                                         "history", "help",     "version"};

void cx_cli_usage(FILE *f)
{
    fputs(
        "usage: cx [OPTIONS] COMMAND [ARGS]\n"
        "\n"
        "Commands:\n"
        "  install PKG...        ask the LLM for an install plan per package (in parallel),\n"
        "                        validate and merge them; prints the merged plan (dry run)\n"
        "  diagnose FILE...      diagnose several error messages at once (each FILE holds one)\n"
        "  hwcheck               probe CPU, memory, disk and GPU concurrently and ask for advice\n"
        "  cache stats|clear     show or empty the response cache\n"
        "  history [--limit N]   list recorded install runs (newest first)\n"
        "  help, version\n"
        "\n"
        "Options:\n"
        "  --json                print exactly one JSON object on stdout instead of text\n"
        "  -q, --quiet           no progress and no notes on stderr\n"
        "  --mode serial|gil|free   execution mode (default: CORTEX_EXEC_MODE or free)\n"
        "  --threads N           worker threads (default: CORTEX_THREAD_POOL_SIZE or 10)\n"
        "  --io thread|hybrid|auto  I/O design (default: CORTEX_IO_DESIGN or auto)\n"
        "  --base-url URL        talk to this server (CORTEX_BASE_URL); with or without /v1,\n"
        "                        as both SDKs accept it. Checked before any query\n"
        "  --api openai|anthropic   wire format with a base URL (default: anthropic when the\n"
        "                        only key set is ANTHROPIC_API_KEY, else openai)\n"
        "  --api-key-env NAME    send the key held in $NAME (default: the format's usual key:\n"
        "                        OPENAI_API_KEY, then KIMI_API_KEY for openai; ANTHROPIC_API_KEY\n"
        "                        for anthropic; CORTEX_-prefixed names win)\n"
        "  --model NAME          model name sent to the API\n"
        "  --redis URL           fleet mode: share rate limits and cache with other cx processes\n"
        "                        through this Redis (redis://[:pw@]host[:port][/db]; default:\n"
        "                        CORTEX_REDIS_URL). Unreachable, wrong password or no Lua is\n"
        "                        error 1 unless CORTEX_REDIS_OPTIONAL=1\n"
        "  --data-dir DIR        where cortex.db (cache and history) lives (default:\n"
        "                        CORTEX_DATA_DIR, $XDG_DATA_HOME/cortex, ~/.local/share/cortex)\n"
        "  --no-history          record nothing (with --no-cache, cortex.db is not opened)\n"
        "  --no-cache            neither read nor write the response cache\n"
        "  --no-similar-cache    exact cache hits only. By default the cache also answers\n"
        "                        similar prompts (at CORTEX_CACHE_SIMILARITY_THRESHOLD) whose\n"
        "                        packages, versions, actions, negation, numbers, paths and error\n"
        "                        message words are identical (--similar-cache: the default)\n"
        "  --mock-latency D      embedded mock server: latency per reply (e.g. 200ms, 2s)\n"
        "  --time-scale F        embedded mock server: multiply every delay by F\n"
        "install options:\n"
        "  --dry-run             print the merged plan, run nothing (the default)\n"
        "  --simulate D          pretend to run apt for duration D (deterministic benchmarks)\n"
        "  --execute             really run the plan with /bin/sh, in order, stopping at the\n"
        "                        first failure; asks \"Run N commands? [y/N]\" on the terminal\n"
        "  -y, --yes             do not ask (only with --execute)\n"
        "\n"
        "With no API key (ANTHROPIC_API_KEY, OPENAI_API_KEY, ...) and no --base-url, cx starts\n"
        "the embedded mock LLM server in-process and says so on stderr.\n"
        "Requests are limited to CORTEX_RATE_LIMIT_RPS per second (default 5; 0, inf or off:\n"
        "no limit); the embedded mock is unlimited unless CORTEX_RATE_LIMIT_RPS is set.\n"
        "A corrupt cortex.db is moved aside (cortex.db.corrupt-DATE) and a fresh one started.\n"
        "Durations: a number with a unit ns, us, ms, s or m; a bare number is milliseconds.\n"
        "\n"
        "Exit codes:\n"
        "  0  success\n"
        "  1  error (configuration such as a bad CORTEX_BASE_URL, data directory, unreadable\n"
        "     file, every query failed, a command run by --execute failed, ...)\n"
        "  2  usage error (bad command line: an option, a package name, a --base-url, an\n"
        "     --api-key-env variable that is not set)\n"
        "  3  plan refused: the validator rejected a command, or --execute was not confirmed\n"
        "  4  some queries failed (results for the others are still printed; --execute then\n"
        "     runs nothing)\n",
        f);
}

int cx_cli_parse_duration(const char *s, uint64_t *ns)
{
    if (s == NULL || *s == '\0')
        return -1;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || !isfinite(v) || v < 0)
        return -1;
    double mult;
    if (*end == '\0' || strcmp(end, "ms") == 0)
        mult = 1e6;
    else if (strcmp(end, "ns") == 0)
        mult = 1;
    else if (strcmp(end, "us") == 0)
        mult = 1e3;
    else if (strcmp(end, "s") == 0)
        mult = 1e9;
    else if (strcmp(end, "m") == 0)
        mult = 60e9;
    else
        return -1;
    double r = v * mult;
    if (r > 1e18)
        return -1;
    *ns = (uint64_t)r;
    return 0;
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    if (s == NULL || *s == '\0')
        return -1;
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

static int parse_double(const char *s, double *out)
{
    if (s == NULL || *s == '\0')
        return -1;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || !isfinite(v) || v < 0)
        return -1;
    *out = v;
    return 0;
}

void cx_cli_args_clear(struct cx_cli_args *a)
{
    if (a == NULL)
        return;
    free(a->pos);
    a->pos = NULL;
    a->npos = 0;
}

static void args_init(struct cx_cli_args *a)
{
    memset(a, 0, sizeof *a);
    a->mock_latency_ms = -1;
    a->api = CX_PROVIDER_AUTO;
    a->time_scale = -1;
    a->limit = 20;
    a->similar_cache = 1;
}

/* Splits "--name=value" so both "--name value" and "--name=value" work. */
static int take_value(int argc, char **argv, int *i, const char *eq, const char **val)
{
    if (eq != NULL) {
        *val = eq + 1;
        return 0;
    }
    if (*i + 1 >= argc)
        return -1;
    *i += 1;
    *val = argv[*i];
    return 0;
}

#define USAGE(...)                                                                              \
    do {                                                                                        \
        snprintf(msg, msglen, __VA_ARGS__);                                                     \
        return CX_EXIT_USAGE;                                                                   \
    } while (0)

int cx_cli_parse_args(int argc, char **argv, struct cx_cli_args *a, char *msg, size_t msglen)
{
    args_init(a);
    if (msglen > 0)
        msg[0] = '\0';
    a->pos = calloc((size_t)(argc > 0 ? argc : 1), sizeof *a->pos);
    if (a->pos == NULL)
        USAGE("out of memory");
    int opts_done = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (opts_done || arg[0] != '-' || arg[1] == '\0') {
            if (a->command == NULL)
                a->command = arg;
            else
                a->pos[a->npos++] = argv[i];
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            opts_done = 1;
            continue;
        }
        /* Split --name=value. */
        char name[64];
        const char *eq = strchr(arg, '=');
        size_t nlen = eq ? (size_t)(eq - arg) : strlen(arg);
        if (nlen >= sizeof name)
            USAGE("unknown option '%s'", arg);
        memcpy(name, arg, nlen);
        name[nlen] = '\0';
        const char *val = NULL;
#define NEED_VALUE()                                                                            \
    do {                                                                                        \
        if (take_value(argc, argv, &i, eq, &val) < 0)                                           \
            USAGE("option '%s' needs a value", name);                                           \
    } while (0)
#define NO_VALUE()                                                                              \
    do {                                                                                        \
        if (eq != NULL)                                                                         \
            USAGE("option '%s' takes no value", name);                                          \
    } while (0)
        if (strcmp(name, "--json") == 0) {
            NO_VALUE();
            a->json = 1;
        } else if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0) {
            NO_VALUE();
            a->help = 1;
        } else if (strcmp(name, "-q") == 0 || strcmp(name, "--quiet") == 0) {
            NO_VALUE();
            a->quiet = 1;
        } else if (strcmp(name, "--version") == 0) {
            NO_VALUE();
            if (a->command == NULL)
                a->command = "version";
        } else if (strcmp(name, "--mode") == 0) {
            NEED_VALUE();
            if (cx_exec_mode_parse(val, &a->mode) < 0)
                USAGE("--mode '%s': expected serial, gil or free", val);
            a->have_mode = 1;
        } else if (strcmp(name, "--threads") == 0) {
            NEED_VALUE();
            if (parse_int(val, 1, 1024, &a->threads) < 0)
                USAGE("--threads '%s': expected a whole number from 1 to 1024", val);
        } else if (strcmp(name, "--io") == 0) {
            NEED_VALUE();
            if (cx_io_design_parse(val, &a->io) < 0)
                USAGE("--io '%s': expected thread, hybrid or auto", val);
            a->have_io = 1;
        } else if (strcmp(name, "--base-url") == 0) {
            NEED_VALUE();
            if (*val == '\0')
                USAGE("--base-url: empty URL");
            a->base_url = val;
        } else if (strcmp(name, "--redis") == 0) {
            NEED_VALUE();
            if (*val == '\0')
                USAGE("--redis: empty URL");
            a->redis_url = val;
        } else if (strcmp(name, "--api") == 0) {
            NEED_VALUE();
            if (strcasecmp(val, "openai") == 0)
                a->api = CX_PROVIDER_OPENAI;
            else if (strcasecmp(val, "anthropic") == 0)
                a->api = CX_PROVIDER_CLAUDE;
            else
                USAGE("--api '%s': expected openai or anthropic", val);
        } else if (strcmp(name, "--api-key-env") == 0) {
            NEED_VALUE();
            if (*val == '\0' || strchr(val, '=') != NULL)
                USAGE("--api-key-env '%s': expected the name of an environment variable", val);
            a->api_key_env = val;
        } else if (strcmp(name, "--model") == 0) {
            NEED_VALUE();
            if (*val == '\0')
                USAGE("--model: empty name");
            a->model = val;
        } else if (strcmp(name, "--data-dir") == 0) {
            NEED_VALUE();
            if (*val == '\0')
                USAGE("--data-dir: empty path");
            a->data_dir = val;
        } else if (strcmp(name, "--no-cache") == 0) {
            NO_VALUE();
            a->no_cache = 1;
        } else if (strcmp(name, "--no-history") == 0) {
            NO_VALUE();
            a->no_history = 1;
        } else if (strcmp(name, "--similar-cache") == 0) {
            NO_VALUE();
            a->similar_cache = 1;
        } else if (strcmp(name, "--no-similar-cache") == 0) {
            NO_VALUE();
            a->similar_cache = 0;
        } else if (strcmp(name, "--mock-latency") == 0) {
            NEED_VALUE();
            uint64_t ns;
            if (cx_cli_parse_duration(val, &ns) < 0)
                USAGE("--mock-latency '%s': expected a duration such as 200ms or 2s", val);
            a->mock_latency_ms = (double)ns / 1e6;
        } else if (strcmp(name, "--time-scale") == 0) {
            NEED_VALUE();
            if (parse_double(val, &a->time_scale) < 0)
                USAGE("--time-scale '%s': expected a number >= 0", val);
        } else if (strcmp(name, "--dry-run") == 0) {
            NO_VALUE();
            a->simulate = 0;
            a->execute = 0;
        } else if (strcmp(name, "--simulate") == 0) {
            NEED_VALUE();
            if (cx_cli_parse_duration(val, &a->simulate_ns) < 0)
                USAGE("--simulate '%s': expected a duration such as 4s or 500ms", val);
            a->simulate = 1;
        } else if (strcmp(name, "--execute") == 0) {
            NO_VALUE();
            a->execute = 1;
        } else if (strcmp(name, "-y") == 0 || strcmp(name, "--yes") == 0) {
            NO_VALUE();
            a->yes = 1;
        } else if (strcmp(name, "--limit") == 0) {
            NEED_VALUE();
            if (parse_int(val, 1, 1000000, &a->limit) < 0)
                USAGE("--limit '%s': expected a whole number from 1 to 1000000", val);
        } else {
            USAGE("unknown option '%s'", arg);
        }
#undef NEED_VALUE
#undef NO_VALUE
    }
    if (a->command == NULL) {
        if (a->help)
            return 0;
        USAGE("no command given");
    }
    int known = 0;
    for (size_t k = 0; k < sizeof k_commands / sizeof k_commands[0]; k++)
        if (strcmp(a->command, k_commands[k]) == 0)
            known = 1;
    if (!known)
        USAGE("unknown command '%s'", a->command);
    if (a->execute && a->simulate)
        USAGE("--execute and --simulate cannot be combined");
    if ((a->execute || a->simulate) && strcmp(a->command, "install") != 0)
        USAGE("--execute/--simulate apply to install only, not '%s'", a->command);
    if (a->yes && !a->execute)
        USAGE("--yes only makes sense with --execute");
    if (strcmp(a->command, "install") == 0 && a->npos == 0 && !a->help)
        USAGE("install: no package named");
    if (strcmp(a->command, "diagnose") == 0 && a->npos == 0 && !a->help)
        USAGE("diagnose: no file named");
    if (strcmp(a->command, "cache") == 0 && !a->help) {
        if (a->npos != 1 || (strcmp(a->pos[0], "stats") != 0 && strcmp(a->pos[0], "clear") != 0))
            USAGE("cache: expected 'cache stats' or 'cache clear'");
    }
    if ((strcmp(a->command, "hwcheck") == 0 || strcmp(a->command, "history") == 0 ||
         strcmp(a->command, "version") == 0) &&
        a->npos > 0)
        USAGE("%s: unexpected argument '%s'", a->command, a->pos[0]);
    return 0;
}
