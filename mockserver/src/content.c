/*
 * content.c - the mock server's reply text: install plans, error diagnoses, hardware advice and
 * plain chat, chosen from the last user message, deterministic for a (prompt, seed) pair.
 *
 * It recognises the workload by case-insensitive keywords (see CONTENT_CONTRACT in the README),
 * builds the JSON object with cJSON (so every string is escaped correctly), wraps it in a
 * ```json fence and optionally pads the explanation to a requested size. The seed picks among
 * equivalent wordings only: the commands of a plan never depend on it, because the runtime's
 * cache and the benchmarks compare plans across seeds. It also owns the tokenizer that both the
 * usage counts and the SSE stream pieces come from, so the two always agree.
 *
 * It does not parse HTTP or JSON requests, pick faults or sleep: the server does that and hands
 * this module the system prompt, the last user message and the per-request seed.
 * Allocation: plain malloc/free (the mock is not the runtime). cJSON's own allocations use
 * whatever hooks the process installed, so its buffers are freed with cJSON_free/cJSON_Delete.
 */
#include "content.h"
#include "content_internal.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#define NAME_MAX_LEN MOCK_PKG_NAME_MAX
#define WORD_MAX 8

/* ---------------------------------------------------------------------------------------------
 * Tokenizer (shared by usage counts and stream pieces).
 */

/* Byte classes for the tokenizer: a table instead of <ctype.h>, which costs a function call per
 * byte (the server splits every reply on its hot path) and depends on the locale. */
enum { CL_PUNCT = 0, CL_SPACE = 1, CL_WORD = 2 };

#define P CL_PUNCT
#define S CL_SPACE
#define W CL_WORD
static const unsigned char byte_class[256] = {
    P, P, P, P, P, P, P, P, P, S, S, S, S, S, P, P, /* 0x00 */
    P, P, P, P, P, P, P, P, P, P, P, P, P, P, P, P, /* 0x10 */
    S, P, P, P, P, P, P, P, P, P, P, P, P, P, P, P, /* 0x20 */
    W, W, W, W, W, W, W, W, W, W, P, P, P, P, P, P, /* 0x30 */
    P, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, /* 0x40 */
    W, W, W, W, W, W, W, W, W, W, W, P, P, P, P, W, /* 0x50 */
    P, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, /* 0x60 */
    W, W, W, W, W, W, W, W, W, W, W, P, P, P, P, P, /* 0x70 */
    W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, /* 0x80 */
    W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, /* 0x90 */
    W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, /* 0xa0 */
    W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, /* 0xb0 */
    W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, /* 0xc0 */
    W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, /* 0xd0 */
    W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, /* 0xe0 */
    W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, /* 0xf0 */
};
#undef P
#undef S
#undef W
_Static_assert(sizeof byte_class == 256, "byte_class covers every byte");

static int is_space_byte(unsigned char c) { return byte_class[c] == CL_SPACE; }

static int is_word_byte(unsigned char c) { return byte_class[c] == CL_WORD; }

/* End of the piece that starts at i (i < len). */
static size_t piece_end(const unsigned char *t, size_t len, size_t i) {
    size_t j = i;
    while (j < len && is_space_byte(t[j])) j++;
    if (j < len) {
        if (is_word_byte(t[j])) {
            size_t w = j;
            /* Past WORD_MAX bytes only continuation bytes extend the run: never split UTF-8. */
            while (j < len && is_word_byte(t[j]) && (j - w < WORD_MAX || (t[j] & 0xC0) == 0x80))
                j++;
        } else {
            j++;
        }
    }
    /* Whitespace that ends the text belongs to the last piece. */
    size_t k = j;
    while (k < len && is_space_byte(t[k])) k++;
    return k == len ? len : j;
}

size_t mock_content_split(const char *text, size_t len, size_t *starts, size_t max) {
    const unsigned char *t = (const unsigned char *)text;
    size_t n = 0;
    if (text == NULL) return 0;
    if (starts == NULL || max == 0) {
        for (size_t i = 0; i < len; i = piece_end(t, len, i)) n++;
        return n;
    }
    for (size_t i = 0; i < len && n < max; i = piece_end(t, len, i)) starts[n++] = i;
    return n;
}

unsigned mock_count_tokens(const char *text, size_t len) {
    size_t n = mock_content_split(text, len, NULL, 0);
    return n > 0xFFFFFFFFu ? 0xFFFFFFFFu : (unsigned)n;
}

/* ---------------------------------------------------------------------------------------------
 * Small helpers.
 */

static uint64_t mix64(uint64_t x) { /* splitmix64 finaliser */
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static uint64_t fnv1a(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Length of a valid UTF-8 sequence at s (at most avail bytes), 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t avail) {
    unsigned char c = s[0];
    size_t n;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c >= 0xE0 && c <= 0xEF) n = 3;
    else if (c >= 0xF0 && c <= 0xF4) n = 4;
    else return 0;
    if (n > avail) return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    if (c == 0xE0 && s[1] < 0xA0) return 0; /* overlong */
    if (c == 0xED && s[1] >= 0xA0) return 0; /* surrogates */
    if (c == 0xF0 && s[1] < 0x90) return 0; /* overlong */
    if (c == 0xF4 && s[1] >= 0x90) return 0; /* past U+10FFFF */
    return n;
}

/*
 * Copies at most max_bytes of s into a fresh string, replacing invalid UTF-8 and control bytes by
 * '?' and never cutting a sequence, so echoed user text is always valid JSON string content.
 */
char *mock__clean_copy(const char *s, size_t max_bytes) {
    size_t len = strlen(s);
    char *out = malloc((len < max_bytes ? len : max_bytes) + 1);
    size_t o = 0;
    if (out == NULL) return NULL;
    for (size_t i = 0; i < len;) {
        const unsigned char *u = (const unsigned char *)s + i;
        size_t n = utf8_seq(u, len - i);
        if (n == 0) n = 1;
        if (o + n > max_bytes) break;
        if (n == 1 && (u[0] < 0x20 || u[0] >= 0x7F)) {
            out[o++] = (u[0] == '\n' || u[0] == '\t') ? ' ' : '?';
        } else {
            memcpy(out + o, u, n);
            o += n;
        }
        i += n;
    }
    /* Trim trailing spaces left by a cut or a newline. */
    while (o > 0 && out[o - 1] == ' ') o--;
    out[o] = '\0';
    return out;
}

/* Copies tmpl into dst (cap bytes) with each "%s" replaced by arg; the tables are templates, not
 * printf formats, so a stray '%' in them cannot read arguments that are not there. */
void mock__fill(char *dst, size_t cap, const char *tmpl, const char *arg) {
    size_t o = 0, al = strlen(arg);
    for (const char *t = tmpl; *t && o + 1 < cap; t++) {
        if (t[0] == '%' && t[1] == 's') {
            size_t k = al < cap - 1 - o ? al : cap - 1 - o;
            memcpy(dst + o, arg, k);
            o += k;
            t++;
        } else {
            dst[o++] = *t;
        }
    }
    dst[o] = '\0';
}

/* A growable byte string for assembling the reply; on failure it frees itself and stays NULL. */
struct sb {
    char *p;
    size_t len, cap;
};

static int sb_add(struct sb *b, const char *s, size_t n) {
    if (b->p == NULL && b->cap != 0) return -1; /* an earlier append failed */
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            free(b->p);
            b->p = NULL;
            b->cap = 1;
            return -1;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

static int sb_str(struct sb *b, const char *s) { return sb_add(b, s, strlen(s)); }

static int sb_printf(struct sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int sb_printf(struct sb *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return -1;
    if ((size_t)n >= sizeof tmp) n = (int)sizeof tmp - 1; /* callers format short strings */
    return sb_add(b, tmp, (size_t)n);
}

/* Filler for padding: ordinary words, so the tokenizer sees word-sized pieces. */
static const char filler[] =
    " The mock server adds this sentence to reach the requested reply size, so benchmarks can"
    " measure large responses without changing the commands above.";

/* Appends exactly n bytes of filler to b. */
static int sb_pad(struct sb *b, size_t n) {
    size_t fl = sizeof filler - 1;
    size_t off = b->len == 0 ? 1 : 0; /* no leading space when the filler stands alone */
    while (n > 0) {
        size_t k = n < fl - off ? n : fl - off;
        if (sb_add(b, filler + off, k) < 0) return -1;
        n -= k;
        off = 0;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Workload tables. Commands are fixed per package; explanations come in seed-chosen variants.
 */

#define MAX_CMDS MOCK_PLAN_MAX_CMDS

struct diag_rule {
    const char *needle; /* lower case substring of the error text */
    const char *cause;
    const char *cmds[MAX_CMDS];
    const char *explanation;
};

static const struct diag_rule diag_table[] = {
    {"no space left on device", "The filesystem that holds the target path is full.",
     {"df -h", "sudo du -xh --max-depth=1 /var", "sudo apt-get clean",
      "sudo journalctl --vacuum-size=200M", "sudo apt-get autoremove -y"},
     "Free space by clearing the apt cache, old journal files and unused packages, then retry."},
    {"permission denied", "The command ran without the privileges the file or device requires.",
     {"id", "ls -la", "sudo -v"},
     "Check which user runs the command and the permissions of the path; rerun it with sudo or "
     "fix the ownership instead of widening permissions."},
    {"could not resolve host", "DNS resolution failed, so the host name has no address.",
     {"cat /etc/resolv.conf", "resolvectl status", "ping -c 1 1.1.1.1",
      "sudo systemctl restart systemd-resolved"},
     "Verify that a nameserver is configured and reachable; if raw IP connectivity works, "
     "restarting the resolver usually fixes it."},
    {"dpkg was interrupted", "A previous package operation stopped before dpkg finished.",
     {"sudo dpkg --configure -a", "sudo apt-get install -f -y"},
     "Let dpkg finish configuring the half-installed packages, then let apt repair dependencies."},
    {"could not get lock", "Another apt or dpkg process holds the package database lock.",
     {"ps -C apt-get,apt,dpkg -o pid,cmd", "sudo systemctl stop unattended-upgrades"},
     "Wait for the other package manager to finish or stop the automatic upgrade service; do not "
     "delete the lock files by hand."},
    {"unable to locate package", "apt does not know the package: the index is stale or the name "
     "is wrong.",
     {"sudo apt-get update", "apt-cache search --names-only %s"},
     "Refresh the package lists and search for the exact name; the package may live in another "
     "component such as universe."},
    {"address already in use", "Another process already listens on the port the service wants.",
     {"sudo ss -ltnp", "systemctl list-units --type=service --state=running"},
     "Find the process that owns the port, stop it or move one of the services to another port."},
    {"port already in use", "Another process already listens on the port the service wants.",
     {"sudo ss -ltnp", "systemctl list-units --type=service --state=running"},
     "Find the process that owns the port, stop it or move one of the services to another port."},
    {"segmentation fault", "The program accessed memory it does not own and the kernel stopped it.",
     {"sudo dmesg --level=err,warn", "coredumpctl list", "sudo apt-get install --reinstall -y %s"},
     "Look at the kernel log and the core dump; reinstalling the package fixes corrupted "
     "binaries, otherwise report the crash with the backtrace."},
    {"segfault", "The program accessed memory it does not own and the kernel stopped it.",
     {"sudo dmesg --level=err,warn", "coredumpctl list", "sudo apt-get install --reinstall -y %s"},
     "Look at the kernel log and the core dump; reinstalling the package fixes corrupted "
     "binaries, otherwise report the crash with the backtrace."},
    {"connection refused", "Nothing listens on the address, or a firewall rejects the connection.",
     {"sudo ss -ltnp", "systemctl --failed"},
     "Check that the service is running and listening on the expected address and port."},
};

static const struct diag_rule diag_generic = {
    NULL, "The message does not match a known failure pattern.",
    {"sudo journalctl -xe --no-pager -n 50", "sudo apt-get check"},
    "Read the recent system log around the failure and check the package database for broken "
    "dependencies."};

struct hw_rule {
    const char *component;
    const char *recs[4];
    const char *cmds[MAX_CMDS];
};

static const struct hw_rule hw_table[] = {
    {"cpu",
     {"Match worker threads to the number of physical cores.",
      "Use the performance governor for latency-sensitive services.",
      "Watch the load average against the core count."},
     {"lscpu", "nproc", "cat /proc/loadavg"}},
    {"memory",
     {"Keep at least 20% of RAM free for the page cache.",
      "Enable a small swap file to absorb short peaks.",
      "Check for memory pressure before adding services."},
     {"free -h", "vmstat 1 5", "swapon --show"}},
    {"disk",
     {"Keep root filesystem usage below 80%.", "Check SMART health of every drive regularly.",
      "Use noatime on data volumes with many reads."},
     {"df -h", "lsblk -o NAME,SIZE,TYPE,MOUNTPOINT", "sudo smartctl -H /dev/sda"}},
    {"gpu",
     {"Install the driver recommended for the detected card.",
      "Keep the GPU temperature below 85 C under load.",
      "Match the CUDA toolkit to the driver version."},
     {"lspci -nnk", "ubuntu-drivers devices", "nvidia-smi"}},
};

static const struct hw_rule hw_generic = {
    "unknown",
    {"Name one of the components cpu, memory, disk or gpu for specific advice.",
     "Collect an inventory of the machine first."},
    {"lshw -short", "inxi -F"}};

static const char no_package_reply[] =
    "Which package should I install? Name it, for example \"install nginx\" or \"set up redis "
    "and git\", and I will reply with the commands.";

static const char *const chat_intro[2] = {"Here is my answer:", "Answer:"};

static const char *const chat_replies[4] = {
    "I can help with installing packages, diagnosing errors and checking hardware.",
    "I am a Linux assistant: ask me to install a package, diagnose an error or check hardware.",
    "Happy to help. I know about package installation, error diagnosis and hardware checks.",
    "Sure. For the best results, ask about a package to install, an error to diagnose or a "
    "hardware component to check."};

/* ---------------------------------------------------------------------------------------------
 * JSON building.
 */

int mock__add_str(cJSON *obj, const char *key, const char *val) {
    return cJSON_AddStringToObject(obj, key, val) ? 0 : -1;
}

int mock__add_str_array(cJSON *obj, const char *key, const char *const *vals, size_t n) {
    cJSON *arr = cJSON_AddArrayToObject(obj, key);
    if (arr == NULL) return -1;
    for (size_t i = 0; i < n; i++) {
        cJSON *s = cJSON_CreateString(vals[i]);
        if (s == NULL) return -1;
        cJSON_AddItemToArray(arr, s);
    }
    return 0;
}

/* Sets obj[key] to the string val, replacing or adding it. */
static int set_str(cJSON *obj, const char *key, const char *val) {
    if (cJSON_GetObjectItemCaseSensitive(obj, key) == NULL) return mock__add_str(obj, key, val);
    cJSON *s = cJSON_CreateString(val);
    if (s == NULL) return -1;
    if (!cJSON_ReplaceItemInObjectCaseSensitive(obj, key, s)) {
        cJSON_Delete(s);
        return -1;
    }
    return 0;
}

/* Appends "intro\n\n```json\n<obj>\n```\n" to b. When the text would be shorter than pad_to,
 * obj[pad_key] becomes pad_base plus filler so the whole text is exactly pad_to bytes (plain
 * ASCII filler is copied into the JSON byte for byte). pad_key may be a member obj lacks. */
static int emit_fenced(struct sb *b, const char *intro, cJSON *obj, const char *pad_key,
                       const char *pad_base, size_t pad_to) {
    static const char tail[] = "\n```\n";
    if (sb_str(b, intro) < 0 || sb_str(b, "\n\n```json\n") < 0) return -1;
    char *js = cJSON_Print(obj);
    if (js == NULL) return -1;
    if (pad_key != NULL && b->len + strlen(js) + strlen(tail) < pad_to) {
        cJSON_free(js);
        /* Measure with the member present (it may be new), then grow it by the difference. */
        if (set_str(obj, pad_key, pad_base) < 0 || (js = cJSON_Print(obj)) == NULL) return -1;
        size_t total = b->len + strlen(js) + strlen(tail);
        cJSON_free(js);
        js = NULL;
        struct sb e = {0};
        if (sb_str(&e, pad_base) == 0 && sb_pad(&e, pad_to > total ? pad_to - total : 0) == 0 &&
            e.p != NULL && set_str(obj, pad_key, e.p) == 0)
            js = cJSON_Print(obj);
        free(e.p);
        if (js == NULL) return -1;
    }
    int rc = (sb_str(b, js) < 0 || sb_str(b, tail) < 0) ? -1 : 0;
    cJSON_free(js);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Workloads.
 */

static int gen_install(struct sb *b, const struct mock_prompt *pr, uint64_t r, size_t pad_to,
                       int dangerous) {
    char intro[MOCK_PROMPT_MAX_PKGS * (NAME_MAX_LEN + 8) + 64];
    cJSON *obj = mock__plan_object(pr, r, dangerous, intro, sizeof intro);
    if (obj == NULL) return -1;
    const cJSON *ex = cJSON_GetObjectItemCaseSensitive(obj, "explanation");
    struct sb base = {0};
    int rc = sb_str(&base, ex->valuestring);
    if (rc == 0) rc = emit_fenced(b, intro, obj, "explanation", base.p, pad_to);
    free(base.p);
    cJSON_Delete(obj);
    return rc;
}

static int gen_diagnose(struct sb *b, const char *err_text, uint64_t r, size_t pad_to) {
    const struct diag_rule *dr = &diag_generic;
    for (size_t i = 0; i < sizeof diag_table / sizeof diag_table[0]; i++) {
        if (mock__find_ci(err_text, diag_table[i].needle, 0) != NULL) {
            dr = &diag_table[i];
            break;
        }
    }
    /* Some fixes name a package: the word after "package" in the message, else a placeholder. */
    char pkg[NAME_MAX_LEN + 1] = "<package>";
    const char *pp = mock__find_ci(err_text, "package ", 1);
    if (pp != NULL) mock__package_name(pp + strlen("package "), pkg);

    char cmdbuf[MAX_CMDS][160];
    const char *cmds[MAX_CMDS];
    size_t n = 0;
    for (; n < MAX_CMDS && dr->cmds[n] != NULL; n++) {
        if (strstr(dr->cmds[n], "%s") != NULL) {
            mock__fill(cmdbuf[n], sizeof cmdbuf[n], dr->cmds[n], pkg);
            cmds[n] = cmdbuf[n];
        } else {
            cmds[n] = dr->cmds[n];
        }
    }
    while (*err_text && is_space_byte((unsigned char)*err_text)) err_text++;
    char *first = mock__clean_copy(err_text, 80);
    if (first == NULL) return -1;
    static const char *const intros[3] = {"Diagnosis:",
                                          "Here is what went wrong and how to fix it:",
                                          "This is a known failure; the fix:"};
    cJSON *obj = cJSON_CreateObject();
    int rc = -1;
    if (obj != NULL && mock__add_str(obj, "error", first) == 0 &&
        mock__add_str(obj, "cause", dr->cause) == 0 &&
        mock__add_str_array(obj, "commands", cmds, n) == 0 &&
        mock__add_str(obj, "explanation", dr->explanation) == 0)
        rc = emit_fenced(b, intros[r % 3], obj, "explanation", dr->explanation, pad_to);
    cJSON_Delete(obj);
    free(first);
    return rc;
}

static int gen_hardware(struct sb *b, const char *rest, uint64_t r, size_t pad_to) {
    const struct hw_rule *hr = &hw_generic;
    while (*rest && is_space_byte((unsigned char)*rest)) rest++;
    for (size_t i = 0; i < sizeof hw_table / sizeof hw_table[0]; i++) {
        size_t cl = strlen(hw_table[i].component);
        if (strncasecmp(rest, hw_table[i].component, cl) == 0 &&
            !isalnum((unsigned char)rest[cl])) {
            hr = &hw_table[i];
            break;
        }
    }
    /* "ram" is common shorthand for memory. */
    if (hr == &hw_generic && strncasecmp(rest, "ram", 3) == 0 && !isalnum((unsigned char)rest[3]))
        hr = &hw_table[1];
    size_t nr = 0, nc = 0;
    while (nr < 4 && hr->recs[nr] != NULL) nr++;
    while (nc < MAX_CMDS && hr->cmds[nc] != NULL) nc++;
    static const char *const intros[3] = {"Hardware recommendations for %s:",
                                          "Advice for the %s:", "Checks and advice (%s):"};
    char intro[96];
    mock__fill(intro, sizeof intro, intros[r % 3], hr->component);

    /* Padding goes into an extra "note" member, added only when padding is needed. */
    cJSON *obj = cJSON_CreateObject();
    int rc = -1;
    if (obj != NULL && mock__add_str(obj, "component", hr->component) == 0 &&
        mock__add_str_array(obj, "recommendations", hr->recs, nr) == 0 &&
        mock__add_str_array(obj, "commands", hr->cmds, nc) == 0) {
        rc = emit_fenced(b, intro, obj, "note", "", pad_to);
    }
    cJSON_Delete(obj);
    return rc;
}

static int gen_chat(struct sb *b, const char *prompt, uint64_t r, size_t pad_to) {
    char *echo = mock__clean_copy(prompt, 60);
    if (echo == NULL) return -1;
    int rc = sb_str(b, chat_replies[r % 4]);
    if (rc == 0 && echo[0] != '\0') rc = sb_printf(b, " You wrote: \"%s\".", echo);
    free(echo);
    if (rc == 0 && pad_to > b->len) rc = sb_pad(b, pad_to - b->len);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Entry points.
 */

uint64_t mock__content_r(uint64_t seed, const char *prompt) {
    /* Wording depends on the seed and the prompt, so one seed does not give every reply the same
     * variant; the commands never look at r. */
    return mix64(seed ^ fnv1a(prompt ? prompt : ""));
}

/* No package and no known workload. A request that mentions JSON gets the chat answer inside
 * the block shape plans use, so a client parsing "commands" finds an empty list, not an error. */
static cJSON *unknown_object(const struct mock_prompt *pr, uint64_t r) {
    cJSON *obj = cJSON_CreateObject();
    const char *answer = pr->install_asked ? no_package_reply : chat_replies[r % 4];
    if (obj == NULL || cJSON_AddArrayToObject(obj, "commands") == NULL ||
        mock__add_str(obj, "explanation", answer) < 0) {
        cJSON_Delete(obj);
        return NULL;
    }
    return obj;
}

static int gen_unknown(struct sb *b, const struct mock_prompt *pr, const char *prompt, uint64_t r,
                       size_t pad_to) {
    if (!pr->wants_json) {
        if (pr->install_asked) {
            int rc = sb_str(b, no_package_reply);
            if (rc == 0 && pad_to > b->len) rc = sb_pad(b, pad_to - b->len);
            return rc;
        }
        return gen_chat(b, prompt, r, pad_to);
    }
    cJSON *obj = unknown_object(pr, r);
    if (obj == NULL) return -1;
    struct sb base = {0};
    int rc = sb_str(&base, cJSON_GetObjectItemCaseSensitive(obj, "explanation")->valuestring);
    if (rc == 0) rc = emit_fenced(b, chat_intro[r % 2], obj, "explanation", base.p, pad_to);
    free(base.p);
    cJSON_Delete(obj);
    return rc;
}

int mock_content_generate(const char *system, const char *prompt, uint64_t seed, size_t pad_to,
                          int dangerous, struct mock_content *out) {
    struct sb b = {0};
    struct mock_prompt pr;
    int rc;
    memset(out, 0, sizeof *out);
    if (system == NULL) system = "";
    if (prompt == NULL) prompt = "";
    uint64_t r = mock__content_r(seed, prompt);
    mock_prompt_parse(system, prompt, &pr);
    switch (pr.intent) {
    case MOCK_INTENT_DIAGNOSE: rc = gen_diagnose(&b, pr.arg, r, pad_to); break;
    case MOCK_INTENT_HARDWARE: rc = gen_hardware(&b, pr.arg, r, pad_to); break;
    case MOCK_INTENT_INSTALL: rc = gen_install(&b, &pr, r, pad_to, dangerous); break;
    default: rc = gen_unknown(&b, &pr, prompt, r, pad_to); break;
    }
    if (rc < 0 || b.p == NULL) {
        free(b.p);
        return -1;
    }
    out->text = b.p;
    out->completion_tokens = mock_count_tokens(b.p, b.len);
    out->prompt_tokens = mock_count_tokens(system, strlen(system)) +
                         mock_count_tokens(prompt, strlen(prompt));
    return 0;
}

/* The block of a text reply, parsed back: diagnosis and hardware advice are built as text (their
 * builders own the JSON), so the object is taken from that text rather than built twice. */
static cJSON *object_from_text(const char *text) {
    const char *open = strstr(text, "```json\n");
    if (open == NULL) return NULL;
    const char *body = open + strlen("```json\n");
    const char *close = strstr(body, "\n```");
    return close ? cJSON_ParseWithLength(body, (size_t)(close - body)) : NULL;
}

cJSON *mock__content_object(const struct mock_prompt *pr, const char *prompt, uint64_t r) {
    struct sb b = {0};
    cJSON *obj = NULL;
    int rc;
    switch (pr->intent) {
    case MOCK_INTENT_INSTALL: return mock__plan_object(pr, r, 0, NULL, 0);
    case MOCK_INTENT_DIAGNOSE: rc = gen_diagnose(&b, pr->arg, r, 0); break;
    case MOCK_INTENT_HARDWARE: rc = gen_hardware(&b, pr->arg, r, 0); break;
    default:
        if (pr->install_asked || pr->wants_json) return unknown_object(pr, r);
        rc = gen_chat(&b, prompt ? prompt : "", r, 0);
        obj = rc == 0 && b.p ? cJSON_CreateObject() : NULL;
        if (obj != NULL && mock__add_str(obj, "answer", b.p) < 0) {
            cJSON_Delete(obj);
            obj = NULL;
        }
        free(b.p);
        return obj;
    }
    if (rc == 0 && b.p != NULL) obj = object_from_text(b.p);
    free(b.p);
    return obj;
}

int mock_content_object(const char *system, const char *prompt, uint64_t seed, cJSON **out) {
    struct mock_prompt pr;
    mock_prompt_parse(system, prompt, &pr);
    *out = mock__content_object(&pr, prompt, mock__content_r(seed, prompt));
    return *out ? 0 : -1;
}

void mock_content_free(struct mock_content *c) {
    if (c == NULL) return;
    free(c->text);
    memset(c, 0, sizeof *c);
}
