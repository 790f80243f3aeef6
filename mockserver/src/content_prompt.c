/*
 * content_prompt.c - what a prompt asks for: the project's own prompt shapes ("Diagnose error:",
 * "Hardware check:", "Install package:", "Analyze package") and, for anything else, the package
 * names a person would write in natural language ("Install the package nginx on Debian", "set up
 * 'redis' and `git`", "I need python3.11", "packages nginx, redis and git", "nginx=1.22*").
 *
 * The reader is a word scanner, not a grammar: an install verb opens a list, names are collected
 * until a clause ends (sentence punctuation or a word from the END list), and SKIP words
 * (articles, "package", polite words) are passed over. Weak verbs ("need", "want", "add") only
 * accept names that look technical, because "I need help" is not a request for a package called
 * help. Deterministic, allocation-free, locale-free (ASCII case folding only).
 *
 * It does not build replies (content.c) or touch JSON.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "content.h"
#include "content_internal.h"

#define WORD_CAP (MOCK_PKG_NAME_MAX + MOCK_PKG_VERSION_MAX + 2)

/* Words that never start or continue a list of names. A clause ends at an END word. */
static const char *const end_words[] = {
    "on", "onto", "for", "in", "into", "from", "with", "without", "using", "via", "to", "so",
    "that", "which", "who", "then", "but", "because", "if", "when", "where", "while", "after",
    "before", "by", "at", "as", "like", "than", "is", "are", "was", "were", "be", "been", "it",
    "its", "it's", "this", "my", "our", "your", "their", "his", "her", "them", "they", "we", "you",
    "i", "i'm", "i'd", "answer", "reply", "respond", "return", "give", "show", "tell", "explain",
    "describe", "list", "print", "output", "write", "format", "configure", "config", "start",
    "enable", "run", "make", "use", "check", "verify", "test", "update", "upgrade", "remove",
    "uninstall", "purge", "help", "do", "does", "did", "can", "could", "would", "should", "will",
    "shall", "may", "might", "must", "what", "why", "how", "not", "no", "yes", "there", "here",
    "thanks", "thank", "thx", "cheers", "json", "block", "blocks", "commands", "command", "steps",
    "machine", "system", "box", "computer", "host", "vm", "container", "laptop", "desktop",
    "something", "anything", "stuff", "things", "thing", "everything", "instead", "first", "too",
    "hello", "hi", "hey", "ok", "okay", "sure", "want", "need", "know", "about", "way",
    "best", "good", "ready", "working", "work", "correctly", "each", "every", "one", "two",
    "three", "only", "against", "fails", "failed", "failing", "fail", "works", "worked",
    "crashes", "crashed", "breaks", "broke", "errors", "error", "hangs", "gives", "says",
    "whichever", "whatever", "either", "neither", "safe", "possible", "fast", "under", "over",
    "behind", "inside", "and/or", "etc",
};

/* Words passed over inside a list (and right after a verb). */
static const char *const skip_words[] = {
    "a", "an", "the", "some", "any", "these", "those", "following", "both", "all", "package",
    "packages", "pkg", "pkgs", "please", "pls", "kindly", "just", "also", "latest", "newest",
    "recent", "current", "stable", "new", "version", "versions", "of", "me", "us", "quickly",
    "now", "today", "again", "properly", "tool", "tools", "utility", "utilities", "program",
    "programs", "software", "app", "apps", "application", "applications", "library",
    "libraries", "server", "servers", "service", "services", "daemon", "web", "stack", "called",
    "named", "debian", "ubuntu", "linux", "sudo", "apt", "apt-get", "aptitude", "dpkg", "up",
    "cache", "database", "db", "proxy", "reverse", "editor", "compiler", "runtime", "client",
    "engine", "interpreter", "monitor", "firewall", "browser", "mail", "dns", "ftp", "vpn",
    "file", "sql", "http", "https", "local", "remote", "simple", "small", "basic", "good",
    "lamp", "lemp",
};

/* Separators between names. */
static const char *const sep_words[] = {"and", "or", "&", "n"};

/* After one of these the list goes on with technical names only ("a mail server with postfix",
 * but not "nginx with ssl"). */
static const char *const weak_joins[] = {"with", "using", "via", "like", "plus"};

/* Names accepted after a weak verb even though they look like plain words. */
static const char *const known_pkgs[] = {
    "nginx", "redis", "postgresql", "postgres", "docker", "nodejs", "node", "npm", "git", "htop",
    "curl", "wget", "vim", "emacs", "tmux", "screen", "python3", "python", "pip", "apache2",
    "apache", "mysql", "mariadb", "sqlite3", "jq", "gcc", "make", "cmake", "golang", "rustc",
    "cargo", "php", "ruby", "zsh", "fish", "fail2ban", "ufw", "certbot", "haproxy", "memcached",
    "mongodb", "grafana", "prometheus", "tree", "ffmpeg", "rsync", "openssl", "openjdk",
    "java", "maven", "gradle", "ansible", "terraform", "kubectl", "helm", "podman", "lxc",
    "netcat", "nmap", "tcpdump", "wireshark", "strace", "gdb", "valgrind", "clang", "perl",
    "unzip", "zip", "neovim", "nano", "elasticsearch", "kafka", "rabbitmq", "varnish", "squid",
    "bind9", "dnsmasq", "samba", "nfs", "cups", "vlc", "gimp", "firefox", "chromium",
    "postfix", "dovecot", "exim4", "openvpn", "wireguard", "ssh", "apache2-utils", "nodejs",
};

/* Install verbs: strong ones accept any name-like word, weak ones only technical names. */
static const char *const strong_verbs[] = {"install", "installing", "reinstall", "setup",
                                           "set-up", "deploy", "deploying", "provision"};
static const char *const weak_verbs[] = {"need", "needs", "want", "wants", "add", "require",
                                         "requires", "get"};

static int in_list(const char *w, const char *const *list, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(w, list[i]) == 0) return 1;
    return 0;
}
#define IN(w, list) in_list((w), (list), sizeof(list) / sizeof(list)[0])

const char *mock__find_ci(const char *hay, const char *needle, int at_word) {
    size_t nl = strlen(needle);
    for (const char *p = hay; *p; p++) {
        if (at_word && p > hay && (isalnum((unsigned char)p[-1]) || p[-1] == '_')) continue;
        if (strncasecmp(p, needle, nl) == 0) return p;
    }
    return NULL;
}

/* One word of the prompt, stripped of surrounding quotes and punctuation and lower-cased. */
struct word {
    char low[WORD_CAP + 1];
    int quoted;      /* it was in quotes or backticks */
    int after_comma; /* a comma came between it and the word before */
    int ends_clause; /* '.', '?', '!' or ';' followed it */
    int too_long;
};

static int is_sp(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

/* Reads the next word at *pp (commas separate words); 0 at the end of the text. */
static int next_word(const char **pp, struct word *w) {
    const char *p = *pp;
    int comma = 0;
    while (*p && (is_sp((unsigned char)*p) || *p == ',')) comma |= *p++ == ',';
    if (*p == '\0') return 0;
    const char *e = p;
    while (*e && !is_sp((unsigned char)*e) && *e != ',') e++;
    *pp = e;
    memset(w, 0, sizeof *w);
    w->after_comma = comma;
    while (p < e && strchr("\"'`([<{*", *p)) {
        if (strchr("\"'`", *p)) w->quoted = 1;
        p++;
    }
    /* A trailing '*' belongs to a version glob ("nginx=1.22*"), so only strip it without '='. */
    while (e > p && strchr(".;:!?\"'`)]}>", e[-1])) {
        if (strchr(".;!?", e[-1])) w->ends_clause = 1;
        if (strchr("\"'`", e[-1])) w->quoted = 1;
        e--;
    }
    if (e > p && e[-1] == '*' && memchr(p, '=', (size_t)(e - p)) == NULL) {
        while (e > p && e[-1] == '*') e--;
    }
    size_t n = (size_t)(e - p);
    if (n > WORD_CAP) {
        w->too_long = 1;
        n = WORD_CAP;
    }
    for (size_t i = 0; i < n; i++) w->low[i] = (char)tolower((unsigned char)p[i]);
    w->low[n] = '\0';
    return 1;
}

static int name_byte(unsigned char c) {
    return isalnum(c) || c == '.' || c == '+' || c == '_' || c == '-';
}

/* Splits w->low into a package name and version when it is one; 0 when it is not name-like. */
static int as_package(const struct word *w, struct mock_pkg_ref *ref) {
    const char *s = w->low;
    if (w->too_long || !isalnum((unsigned char)s[0])) return 0;
    size_t n = strcspn(s, "=");
    int letter = 0;
    if (n > MOCK_PKG_NAME_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        if (!name_byte((unsigned char)s[i])) return 0;
        if (isalpha((unsigned char)s[i])) letter = 1;
    }
    if (!letter || s[n - 1] == '.' || s[n - 1] == '-') return 0;
    memset(ref, 0, sizeof *ref);
    memcpy(ref->name, s, n);
    if (s[n] == '=') {
        const char *v = s + n + 1;
        size_t vl = strlen(v);
        if (vl == 0 || vl > MOCK_PKG_VERSION_MAX || !isalnum((unsigned char)v[0])) return 0;
        for (size_t i = 0; i < vl; i++)
            if (!isalnum((unsigned char)v[i]) && !strchr(".+~:*-", v[i])) return 0;
        memcpy(ref->version, v, vl);
    }
    return 1;
}

/* A bare version number ("1.22", "3.11.4"): digits and dots, at least one dot. */
static int is_version_number(const char *s) {
    int dot = 0;
    if (!isdigit((unsigned char)s[0]) || strlen(s) > MOCK_PKG_VERSION_MAX) return 0;
    for (; *s; s++) {
        if (*s == '.') dot = 1;
        else if (!isdigit((unsigned char)*s)) return 0;
    }
    return dot;
}

/* Looks technical enough to be a package after a weak verb. */
static int technical(const struct word *w, const struct mock_pkg_ref *ref) {
    if (w->quoted || ref->version[0] || IN(ref->name, known_pkgs)) return 1;
    for (const char *c = ref->name; *c; c++)
        if (isdigit((unsigned char)*c) || strchr(".+_-", *c)) return 1;
    return 0;
}

static void add_pkg(struct mock_prompt *out, const struct mock_pkg_ref *ref) {
    for (size_t i = 0; i < out->n_pkgs; i++) {
        if (strcmp(out->pkgs[i].name, ref->name) == 0) {
            if (out->pkgs[i].version[0] == '\0') memcpy(out->pkgs[i].version, ref->version,
                                                         sizeof ref->version);
            return;
        }
    }
    if (out->n_pkgs < MOCK_PROMPT_MAX_PKGS) out->pkgs[out->n_pkgs++] = *ref;
}

enum { ST_IDLE, ST_STRONG, ST_WEAK };

/* The natural-language reader: see content.h. */
static void parse_natural(const char *prompt, struct mock_prompt *out) {
    const char *p = prompt;
    struct word w;
    int st = ST_IDLE, negated = 0, after_version_word = 0, after_name = 0;
    char prev[WORD_CAP + 1] = "";
    while (next_word(&p, &w)) {
        const char *s = w.low;
        int verb = 0;
        if (IN(s, strong_verbs)) verb = ST_STRONG;
        else if (strcmp(s, "set") == 0) {
            /* "set up" is a strong verb; peek at the next word. */
            const char *q = p;
            struct word nx;
            if (!w.ends_clause && next_word(&q, &nx) && strcmp(nx.low, "up") == 0) {
                p = q;
                w.ends_clause = nx.ends_clause;
                verb = ST_STRONG;
            }
        } else if (IN(s, weak_verbs) && st != ST_STRONG) {
            verb = ST_WEAK;
        }
        if (verb) {
            /* "don't install x", "do not install x", "without installing x" plan nothing. */
            negated = strcmp(prev, "not") == 0 || strcmp(prev, "don't") == 0 ||
                      strcmp(prev, "dont") == 0 || strcmp(prev, "never") == 0 ||
                      strcmp(prev, "without") == 0;
            if (!negated) {
                st = verb;
                if (verb == ST_STRONG) out->install_asked = 1;
            } else {
                st = ST_IDLE;
            }
        } else if (st != ST_IDLE) {
            struct mock_pkg_ref ref;
            if (w.after_comma) after_name = 0;
            if (IN(s, sep_words)) {
                after_name = 0;
            } else if (IN(s, weak_joins)) {
                st = ST_WEAK;
                after_name = 0;
            } else if (s[0] == '\0' || s[0] == '-' || IN(s, skip_words)) {
                /* passed over: flags such as -y, "the package" */
            } else if (is_version_number(s)) {
                /* "nginx 1.22", "nginx version 1.22": pins the last name without a version. */
                if (out->n_pkgs > 0 && out->pkgs[out->n_pkgs - 1].version[0] == '\0' &&
                    (after_version_word || strcmp(prev, out->pkgs[out->n_pkgs - 1].name) == 0))
                    strcpy(out->pkgs[out->n_pkgs - 1].version, s);
            } else if (isdigit((unsigned char)s[0]) && strspn(s, "0123456789") == strlen(s)) {
                /* a count ("install 3 packages") */
            } else if (IN(s, end_words) || !as_package(&w, &ref) ||
                       ((st == ST_WEAK || after_name) && !technical(&w, &ref))) {
                /* A second plain word right after a name ("nginx fails", "redis cache") ends
                 * the list; "nginx redis" and "htop curl" are known names and go on. */
                st = ST_IDLE;
            } else {
                add_pkg(out, &ref);
                after_name = 1;
            }
        }
        after_version_word = strcmp(s, "version") == 0;
        if (verb) after_name = 0;
        if (w.ends_clause) st = ST_IDLE;
        memcpy(prev, s, sizeof prev);
    }
}

int mock__prompt_mention(const char *prompt, struct mock_pkg_ref *out) {
    const char *p = prompt ? prompt : "";
    struct word w;
    struct mock_pkg_ref after = {{0}, {0}}, quoted = {{0}, {0}};
    int prev_pkg = 0;
    while (next_word(&p, &w)) {
        struct mock_pkg_ref ref;
        int named = !IN(w.low, skip_words) && !IN(w.low, end_words) && as_package(&w, &ref);
        if (named && IN(ref.name, known_pkgs)) {
            *out = ref;
            return 1;
        }
        if (named && prev_pkg && !after.name[0]) after = ref;
        if (named && w.quoted && !quoted.name[0]) quoted = ref;
        prev_pkg = strcmp(w.low, "package") == 0 || strcmp(w.low, "packages") == 0;
    }
    *out = after.name[0] ? after : quoted;
    return out->name[0] != '\0';
}

void mock_prompt_parse(const char *system, const char *prompt, struct mock_prompt *out) {
    static const char *const legacy_install[2] = {"install package:", "analyze package "};
    const char *p;
    memset(out, 0, sizeof *out);
    if (system == NULL) system = "";
    if (prompt == NULL) prompt = "";
    out->wants_json = mock__find_ci(prompt, "json", 0) != NULL ||
                      mock__find_ci(system, "json", 0) != NULL;
    if ((p = mock__find_ci(prompt, "diagnose error:", 1)) != NULL) {
        out->intent = MOCK_INTENT_DIAGNOSE;
        out->arg = p + strlen("diagnose error:");
        return;
    }
    if ((p = mock__find_ci(prompt, "hardware check:", 1)) != NULL) {
        out->intent = MOCK_INTENT_HARDWARE;
        out->arg = p + strlen("hardware check:");
        return;
    }
    for (size_t i = 0; i < 2; i++) {
        if ((p = mock__find_ci(prompt, legacy_install[i], 1)) != NULL) {
            /* The project's own shape: exactly one name, sanitized, never refused. */
            mock__package_name(p + strlen(legacy_install[i]), out->pkgs[0].name);
            out->n_pkgs = 1;
            out->install_asked = 1;
            out->intent = MOCK_INTENT_INSTALL;
            out->arg = p + strlen(legacy_install[i]);
            return;
        }
    }
    parse_natural(prompt, out);
    if (out->n_pkgs > 0) out->intent = MOCK_INTENT_INSTALL;
}
