// The floor for the broadcast figure on this machine: what the kernel alone costs to deliver one 100-byte
// WebSocket text frame to N subscribers over loopback TCP, with no WebSocket library on either side.
//
// A sender process accepts N connections and, for each message, writes the same 102-byte frame (0x81, 100, then
// 100 'x') to every connection from T threads (T = 2 matches a two-event-loop server). A receiver process (forked
// first, so each side stays under the 20,000-descriptor limit) opens the N connections from 127.0.0.1–127.0.0.4,
// reads them with one epoll thread, and reports when the last byte of each message arrived. Messages go one at a
// time, like `wsbench broadcast`. Output: one JSON line with wsbench's report keys (the receiver's CPU stands in for
// the generator's), so scripts/bench.sh can put it in the broadcast table as the row "c-floor".
//
//   cc -O2 -pthread -o broadcast-floor Benchmarks/floor/broadcast-floor.c
//   ./broadcast-floor --subscribers 10000 --messages 20 --threads 2 --port 9305
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { FRAME = 102, MAX_MESSAGES = 1000, MAX_THREADS = 16 };

static int subscribers = 10000, messages = 20, threads = 2, port = 9305;
static int *sockets;
static unsigned char frame[FRAME];
static pthread_barrier_t go, done;

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static uint64_t cpu_ns(void) {
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return ((uint64_t)(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)) * 1000000000u
        + ((uint64_t)(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec)) * 1000u;
}

static void fail(const char *what) {
    perror(what);
    exit(1);
}

// Sender thread k writes the frame to sockets k, k+T, k+2T, ... for every message.
static void *writer(void *arg) {
    long k = (long)arg;
    for (int m = 0; m < messages; m++) {
        pthread_barrier_wait(&go);
        for (int i = (int)k; i < subscribers; i += threads) {
            if (write(sockets[i], frame, FRAME) != FRAME) fail("write");
        }
        pthread_barrier_wait(&done);
    }
    return NULL;
}

// The receiver: opens every connection, then for each message reads until every subscriber has its frame and
// sends the time of the last read (and, after the last message, its CPU time) back through `results`.
static void receive(const struct sockaddr_in *server, int ready, int results) {
    int epoll = epoll_create1(0), one = 1;
    for (int i = 0; i < subscribers; i++) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in source = {.sin_family = AF_INET};
        char ip[16];
        snprintf(ip, sizeof ip, "127.0.0.%d", 1 + i % 4);
        inet_pton(AF_INET, ip, &source.sin_addr);
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(s, (const void *)&source, sizeof source) || connect(s, (const void *)server, sizeof *server)) fail("connect");
        setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct epoll_event event = {.events = EPOLLIN, .data.fd = s};
        if (epoll_ctl(epoll, EPOLL_CTL_ADD, s, &event)) fail("epoll_ctl");
    }
    if (write(ready, "r", 1) != 1) fail("ready");
    struct epoll_event events[512];
    unsigned char buffer[4096];
    uint64_t cpu = cpu_ns();
    for (int m = 0; m < messages; m++) {
        long long bytes = 0, expected = (long long)subscribers * FRAME;
        uint64_t last = 0;
        while (bytes < expected) {
            int n = epoll_wait(epoll, events, 512, 10000);
            if (n <= 0) fail("epoll_wait (a message did not arrive in 10 s)");
            for (int e = 0; e < n; e++) {
                ssize_t length = read(events[e].data.fd, buffer, sizeof buffer);
                if (length <= 0) fail("read");
                bytes += length;
            }
            last = now_ns();
        }
        if (write(results, &last, sizeof last) != sizeof last) fail("result");
    }
    cpu = cpu_ns() - cpu;
    if (write(results, &cpu, sizeof cpu) != sizeof cpu) fail("result");
    _exit(0);
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    for (int i = 1; i + 1 < argc; i += 2) {
        int value = atoi(argv[i + 1]);
        if (!strcmp(argv[i], "--subscribers")) subscribers = value;
        else if (!strcmp(argv[i], "--messages")) messages = value;
        else if (!strcmp(argv[i], "--threads")) threads = value;
        else if (!strcmp(argv[i], "--port")) port = value;
        else { fprintf(stderr, "unknown option %s\n", argv[i]); return 2; }
    }
    if (subscribers < 1 || messages < 1 || messages > MAX_MESSAGES || threads < 1 || threads > MAX_THREADS) {
        fprintf(stderr, "need --subscribers >= 1, --messages 1...%d, --threads 1...%d\n", MAX_MESSAGES, MAX_THREADS);
        return 2;
    }
    frame[0] = 0x81;
    frame[1] = 100;
    memset(frame + 2, 'x', 100);

    int listener = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
    if (bind(listener, (const void *)&address, sizeof address) || listen(listener, 4096)) fail("listen");
    int ready[2], results[2];
    if (pipe(ready) || pipe(results)) fail("pipe");
    pid_t receiver = fork();
    if (receiver < 0) fail("fork");
    if (receiver == 0) {
        close(listener);
        receive(&address, ready[1], results[1]);
    }

    sockets = calloc((size_t)subscribers, sizeof *sockets);
    for (int i = 0; i < subscribers; i++) {
        if ((sockets[i] = accept(listener, NULL, NULL)) < 0) fail("accept");
        setsockopt(sockets[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    char byte;
    if (read(ready[0], &byte, 1) != 1) fail("receiver");
    pthread_barrier_init(&go, NULL, (unsigned)threads + 1);
    pthread_barrier_init(&done, NULL, (unsigned)threads + 1);
    pthread_t writers[MAX_THREADS];
    for (long k = 0; k < threads; k++) pthread_create(&writers[k], NULL, writer, (void *)k);

    static double latency[MAX_MESSAGES];
    uint64_t started = now_ns();
    for (int m = 0; m < messages; m++) {
        uint64_t sent = now_ns(), last;
        pthread_barrier_wait(&go);
        pthread_barrier_wait(&done);
        if (read(results[0], &last, sizeof last) != sizeof last) fail("receiver");
        latency[m] = (double)(last - sent) / 1e6;
    }
    uint64_t elapsed = now_ns() - started, receiverCPU;
    if (read(results[0], &receiverCPU, sizeof receiverCPU) != sizeof receiverCPU) fail("receiver");
    waitpid(receiver, NULL, 0);
    qsort(latency, (size_t)messages, sizeof *latency, compare);
    printf("{\"connections\":%d,\"deliveries_per_second\":%.0f,\"error_kinds\":{},\"errors\":0,"
           "\"generator_cpu_percent\":%.1f,\"label\":\"c-floor\",\"last_received_millis_max\":%.3f,"
           "\"last_received_millis_median\":%.3f,\"messages\":%d,\"mode\":\"broadcast\",\"size\":100}\n",
           subscribers, (double)subscribers * messages / ((double)elapsed / 1e9),
           (double)receiverCPU / (double)elapsed * 100, latency[messages - 1], latency[messages / 2], messages);
    return 0;
}
