// The floor for the handshake figure: a minimal WebSocket echo server in C, to show how many
// `wsbench connect` cycles per second this machine and this load generator allow when the server costs almost
// nothing. One epoll event loop per thread (one per core by default) on an SO_REUSEPORT listener each. It does
// what a cycle needs and checks little: the upgrade (Sec-WebSocket-Accept computed with the SHA-1 below), masked
// client frames echoed unmasked, pings answered, and a close answered by a close and the TCP close (the server
// closes first, as wsbench expects). No UTF-8 check, no extensions, no limits beyond its buffers; not for use.
//
//   cc -O2 -pthread -o echo-floor Benchmarks/floor/echo-floor.c
//   ./echo-floor --port 9305 --threads 2
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

enum { BUFFER = 65536, MAX_THREADS = 16 };

static int port = 9305, threads = 2;

// SHA-1 (FIPS 180-4) of a short message, for the accept value only.
static void sha1(const unsigned char *data, size_t length, unsigned char out[20]) {
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    size_t total = ((length + 8) / 64 + 1) * 64;
    unsigned char *message = calloc(total, 1);
    memcpy(message, data, length);
    message[length] = 0x80;
    uint64_t bits = (uint64_t)length * 8;
    for (int i = 0; i < 8; i++) message[total - 1 - i] = (unsigned char)(bits >> (8 * i));
    for (size_t block = 0; block < total; block += 64) {
        uint32_t w[80];
        for (int i = 0; i < 16; i++) {
            const unsigned char *p = message + block + 4 * i;
            w[i] = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        }
        for (int i = 16; i < 80; i++) {
            uint32_t x = w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16];
            w[i] = x << 1 | x >> 31;
        }
        uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
        for (int i = 0; i < 80; i++) {
            uint32_t f, k;
            if (i < 20) { f = (b & c) | (~b & d); k = 0x5A827999; }
            else if (i < 40) { f = b ^ c ^ d; k = 0x6ED9EBA1; }
            else if (i < 60) { f = (b & c) | (b & d) | (c & d); k = 0x8F1BBCDC; }
            else { f = b ^ c ^ d; k = 0xCA62C1D6; }
            uint32_t t = (a << 5 | a >> 27) + f + e + k + w[i];
            e = d; d = c; c = b << 30 | b >> 2; b = a; a = t;
        }
        h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e;
    }
    free(message);
    for (int i = 0; i < 20; i++) out[i] = (unsigned char)(h[i / 4] >> (24 - 8 * (i % 4)));
}

static void base64(const unsigned char *in, size_t length, char *out) {
    static const char table[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < length; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < length ? (uint32_t)in[i + 1] << 8 : 0) | (i + 2 < length ? in[i + 2] : 0);
        out[o++] = table[v >> 18 & 63];
        out[o++] = table[v >> 12 & 63];
        out[o++] = i + 1 < length ? table[v >> 6 & 63] : '=';
        out[o++] = i + 2 < length ? table[v & 63] : '=';
    }
    out[o] = 0;
}

typedef struct {
    int fd;
    int upgraded;
    size_t length;
    unsigned char input[BUFFER];
} Connection;

static void drop(int epoll, Connection *c) {
    epoll_ctl(epoll, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c);
}

// Answers the upgrade request in c->input (complete up to `end`); returns 0 when it is not one.
static int upgrade(Connection *c, size_t end) {
    c->input[end - 1] = 0;
    char *key = NULL;
    for (char *line = strstr((char *)c->input, "\r\n"); line && line + 2 < (char *)c->input + end; line = strstr(line + 2, "\r\n")) {
        if (strncasecmp(line + 2, "sec-websocket-key:", 18) == 0) {
            key = line + 20;
            while (*key == ' ') key++;
            break;
        }
    }
    if (!key) return 0;
    size_t keyLength = strcspn(key, "\r ");
    unsigned char concatenated[128], digest[20];
    if (keyLength > 60) return 0;
    memcpy(concatenated, key, keyLength);
    memcpy(concatenated + keyLength, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", 36);
    sha1(concatenated, keyLength + 36, digest);
    char accept[32], response[256];
    base64(digest, 20, accept);
    int n = snprintf(response, sizeof response,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n\r\n", accept);
    return write(c->fd, response, (size_t)n) == n;
}

// Echoes every complete frame in the input; returns 0 when the connection is to be closed.
static int frames(Connection *c) {
    unsigned char output[BUFFER + 16];
    size_t at = 0, out = 0;
    int keep = 1;
    while (c->length - at >= 6) {
        unsigned char *f = c->input + at;
        size_t header = 2, length = f[1] & 0x7F;
        if (length == 126) { length = (size_t)f[2] << 8 | f[3]; header = 4; }
        else if (length == 127) return 0;  // no frames that large here
        if (!(f[1] & 0x80) || length > BUFFER - 16) return 0;
        if (c->length - at < header + 4 + length) break;
        unsigned char *mask = f + header, *payload = f + header + 4;
        for (size_t i = 0; i < length; i++) payload[i] ^= mask[i & 3];
        unsigned char opcode = f[0] & 0x0F;
        unsigned char reply = opcode == 0x9 ? 0x8A : opcode == 0x8 ? 0x88 : (opcode == 0x1 || opcode == 0x2 || opcode == 0x0) ? f[0] : 0;
        if (reply && opcode != 0xA) {
            output[out++] = reply;
            if (length < 126) output[out++] = (unsigned char)length;
            else { output[out++] = 126; output[out++] = (unsigned char)(length >> 8); output[out++] = (unsigned char)length; }
            memcpy(output + out, payload, length);
            out += length;
        }
        at += header + 4 + length;
        if (opcode == 0x8) { keep = 0; break; }
        if (out > BUFFER) break;
    }
    memmove(c->input, c->input + at, c->length - at);
    c->length -= at;
    if (out && write(c->fd, output, out) != (ssize_t)out) return 0;
    return keep;
}

static void *loop(void *unused) {
    (void)unused;
    int one = 1, listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(listener, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
    if (bind(listener, (const void *)&address, sizeof address) || listen(listener, 4096)) { perror("listen"); exit(1); }
    int epoll = epoll_create1(0);
    struct epoll_event event = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(epoll, EPOLL_CTL_ADD, listener, &event);
    struct epoll_event events[256];
    for (;;) {
        int n = epoll_wait(epoll, events, 256, -1);
        for (int e = 0; e < n; e++) {
            Connection *c = events[e].data.ptr;
            if (!c) {
                int fd;
                while ((fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    Connection *accepted = malloc(sizeof *accepted);
                    accepted->fd = fd;
                    accepted->upgraded = 0;
                    accepted->length = 0;
                    struct epoll_event add = {.events = EPOLLIN, .data.ptr = accepted};
                    epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &add);
                }
                continue;
            }
            ssize_t got = read(c->fd, c->input + c->length, BUFFER - c->length);
            if (got <= 0) { drop(epoll, c); continue; }
            c->length += (size_t)got;
            if (!c->upgraded) {
                unsigned char *end = memmem(c->input, c->length, "\r\n\r\n", 4);
                if (!end) { if (c->length == BUFFER) drop(epoll, c); continue; }
                size_t headLength = (size_t)(end - c->input) + 4;
                if (!upgrade(c, headLength)) { drop(epoll, c); continue; }
                memmove(c->input, c->input + headLength, c->length - headLength);
                c->length -= headLength;
                c->upgraded = 1;
            }
            if (!frames(c)) drop(epoll, c);
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else { fprintf(stderr, "unknown option %s\n", argv[i]); return 2; }
    }
    if (threads < 1 || threads > MAX_THREADS) { fprintf(stderr, "--threads 1...%d\n", MAX_THREADS); return 2; }
    pthread_t workers[MAX_THREADS];
    for (int i = 0; i < threads; i++) pthread_create(&workers[i], NULL, loop, NULL);
    for (int i = 0; i < threads; i++) pthread_join(workers[i], NULL);
    return 0;
}
