/* The floor for scenario E: a control-channel responder that does nothing but answer.
 *
 * One process per connection, a blocking read() and one write() per command, canned replies,
 * no file system, no login check. No real FTP server can answer a command with less work, so
 * its E figure is the ceiling for any server on this machine with this client: if it is not
 * 1.2x the best peer, no server can be.
 *
 *   gcc -O2 -o /tmp/floor_ftpd tests/bench/floor_ftpd.c
 *   /tmp/floor_ftpd 30060 &      # then ftpbench.py E with FTP_PORT=30060 FTP_SERVER_PID=$!
 *
 * A benchmark tool only: it is not part of actorftpd and is never built by cargo.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void put(int fd, const char *s) {
    size_t n = strlen(s);
    if (write(fd, s, n) != (ssize_t)n) _exit(0);
}

static const char *answer(const char *line) {
    if (!strncmp(line, "USER", 4)) return "331 Password please\r\n";
    if (!strncmp(line, "PASS", 4)) return "230 Logged in\r\n";
    if (!strncmp(line, "NOOP", 4)) return "200 NOOP ok\r\n";
    if (!strncmp(line, "PWD", 3)) return "257 \"/\" is the current directory\r\n";
    if (!strncmp(line, "CWD", 3)) return "250 Directory changed\r\n";
    if (!strncmp(line, "TYPE", 4)) return "200 Type set\r\n";
    if (!strncmp(line, "QUIT", 4)) return NULL;
    return "502 Not implemented\r\n";
}

static void serve(int fd) {
    char buf[4096];
    size_t have = 0;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    put(fd, "220 floor ready\r\n");
    for (;;) {
        ssize_t n = read(fd, buf + have, sizeof buf - 1 - have);
        if (n <= 0) return;
        have += (size_t)n;
        buf[have] = 0;
        char *start = buf, *nl;
        while ((nl = strchr(start, '\n'))) {
            *nl = 0;
            const char *r = answer(start);
            if (!r) {
                put(fd, "221 Bye\r\n");
                return;
            }
            put(fd, r);
            start = nl + 1;
        }
        have = (size_t)(buf + have - start);
        memmove(buf, start, have);
        if (have == sizeof buf - 1) have = 0;
    }
}

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 30060;
    int one = 1;
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    signal(SIGCHLD, SIG_IGN);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 128)) {
        perror("bind/listen");
        return 1;
    }
    for (;;) {
        int fd = accept(ls, NULL, NULL);
        if (fd < 0) continue;
        if (fork() == 0) {
            close(ls);
            serve(fd);
            _exit(0);
        }
        close(fd);
    }
}
