/* Host BSP: runs the harness natively (`tinyprune validate --host`, protocol tests).
 * Not compiled into board firmware. POSIX only.
 *
 * Link: by default the serial line is stdin/stdout (binary). With TP_HOST_PORT=N in the
 * environment the program listens on 127.0.0.1:N (N=0: any free port), prints
 * "TINYPRUNE_HOST_PORT <port>" on stdout, accepts one connection and uses it; end of input
 * or a closed connection ends the program with status 0.
 * Counter: CLOCK_MONOTONIC nanoseconds (unit "ns"). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "bsp.h"

static int fd_in = 0, fd_out = 1;
static unsigned char inbuf[4096];
static size_t in_pos, in_len;

void bsp_init(void)
{
    const char *port = getenv("TP_HOST_PORT");
    if (port && *port) {
        struct sockaddr_in a;
        socklen_t alen = sizeof a;
        int one = 1, srv = socket(AF_INET, SOCK_STREAM, 0), c;
        if (srv < 0) { perror("socket"); exit(70); }
        setsockopt(srv, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons((unsigned short)atoi(port));
        if (bind(srv, (struct sockaddr *)&a, sizeof a) < 0 || listen(srv, 1) < 0) { perror("bind"); exit(70); }
        getsockname(srv, (struct sockaddr *)&a, &alen);
        printf("TINYPRUNE_HOST_PORT %u\n", (unsigned)ntohs(a.sin_port));
        fflush(stdout);
        c = accept(srv, NULL, NULL);
        if (c < 0) { perror("accept"); exit(70); }
        close(srv);
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fd_in = fd_out = c;
    }
}

void bsp_uart_write(const uint8_t *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd_out, buf, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            exit(0);  /* host went away */
        }
        buf += w;
        n -= (size_t)w;
    }
}

int bsp_uart_getc(uint32_t timeout_ms)
{
    if (in_pos == in_len) {
        struct pollfd p;
        ssize_t r;
        int pr;
        p.fd = fd_in;
        p.events = POLLIN;
        p.revents = 0;
        pr = poll(&p, 1, (int)timeout_ms);
        if (pr < 0 && errno == EINTR) return -1;
        if (pr <= 0) return -1;
        r = read(fd_in, inbuf, sizeof inbuf);
        if (r <= 0) exit(0);  /* end of input */
        in_pos = 0;
        in_len = (size_t)r;
    }
    return inbuf[in_pos++];
}

uint32_t bsp_counter_read(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint32_t)((uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec);
}

const char *bsp_counter_unit(void) { return "ns"; }

const char *bsp_board_name(void) { return "host"; }

void bsp_exit(int status)
{
    exit(status);
}
