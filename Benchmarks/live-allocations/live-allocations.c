// LD_PRELOAD tracer of live allocations, for the idle-memory profile in BENCHMARKS.md (scripts/idle-profile.sh):
// between SIGUSR1 and SIGUSR2 it records every allocation with its call stack and forgets it when it is freed; on
// SIGUSR2 it writes the ones still live as "size frame frame ..." lines to $LIVE_ALLOCATIONS_OUT.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <execinfo.h>
#include <malloc.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static void *(*real_malloc)(size_t); static void (*real_free)(void *);
static void *(*real_calloc)(size_t, size_t); static void *(*real_realloc)(void *, size_t);
static int (*real_pm)(void **, size_t, size_t); static void *(*real_aa)(size_t, size_t);
#define MAXS 5000000
#define DEPTH 14
#define HBITS 24
static void *stacks[MAXS][DEPTH]; static unsigned char depth[MAXS]; static size_t sizes[MAXS]; static char dead[MAXS];
static long used = 0;
static uintptr_t hkeys[1 << HBITS]; static int hvals[1 << HBITS];
static atomic_int on = 0; static atomic_flag lock = ATOMIC_FLAG_INIT;
static __thread int inside = 0;
static char boot[1 << 16]; static size_t bootused = 0;
static void lk(void) { while (atomic_flag_test_and_set(&lock)) {} }
static void ul(void) { atomic_flag_clear(&lock); }
static unsigned h(uintptr_t p) { return (unsigned)((p >> 4) * 0x9E3779B97F4A7C15ull >> (64 - HBITS)); }
static void record(void *p, size_t n) {
    if (!p || !atomic_load(&on) || inside) return;
    inside = 1;
    void *buf[DEPTH]; int d = backtrace(buf, DEPTH);
    lk();
    if (used < MAXS) {
        long i = used++; memcpy(stacks[i], buf, sizeof(buf)); depth[i] = d; sizes[i] = n;
        unsigned k = h((uintptr_t)p);
        while (hkeys[k] && hkeys[k] != 1) k = (k + 1) & ((1 << HBITS) - 1);
        hkeys[k] = (uintptr_t)p; hvals[k] = (int)i;
    }
    ul(); inside = 0;
}
static void forget(void *p) {
    if (!p || !used) return;
    lk();
    unsigned k = h((uintptr_t)p);
    while (hkeys[k]) { if (hkeys[k] == (uintptr_t)p) { dead[hvals[k]] = 1; hkeys[k] = 1; break; } k = (k + 1) & ((1 << HBITS) - 1); }
    ul();
}
static void init_real(void) {
    if (real_malloc) return;
    real_malloc = dlsym(RTLD_NEXT, "malloc"); real_free = dlsym(RTLD_NEXT, "free");
    real_calloc = dlsym(RTLD_NEXT, "calloc"); real_realloc = dlsym(RTLD_NEXT, "realloc");
    real_pm = dlsym(RTLD_NEXT, "posix_memalign"); real_aa = dlsym(RTLD_NEXT, "aligned_alloc");
}
void *malloc(size_t n) { init_real(); void *p = real_malloc(n); record(p, malloc_usable_size(p)); return p; }
void *calloc(size_t a, size_t b) {
    if (!real_calloc) { void *p = boot + bootused; bootused += (a * b + 15) & ~15ul; return p; }
    void *p = real_calloc(a, b); record(p, malloc_usable_size(p)); return p;
}
void *realloc(void *q, size_t n) { init_real(); forget(q); void *p = real_realloc(q, n); record(p, malloc_usable_size(p)); return p; }
void free(void *p) { if ((char *)p >= boot && (char *)p < boot + sizeof(boot)) return; init_real(); forget(p); real_free(p); }
int posix_memalign(void **r, size_t a, size_t n) { init_real(); int e = real_pm(r, a, n); if (!e) record(*r, malloc_usable_size(*r)); return e; }
void *aligned_alloc(size_t a, size_t n) { init_real(); void *p = real_aa(a, n); record(p, malloc_usable_size(p)); return p; }
static void start(int s) { (void)s; atomic_store(&on, 1); }
static void stop(int s) {
    (void)s; atomic_store(&on, 0);
    const char *path = getenv("LIVE_ALLOCATIONS_OUT"); if (!path) path = "live-allocations.out";
    inside = 1; FILE *f = fopen(path, "w");
    long live = 0; size_t bytes = 0;
    for (long i = 0; i < used; i++) if (!dead[i]) { live++; bytes += sizes[i]; }
    fprintf(f, "recorded %ld live %ld bytes %zu\n", used, live, bytes);
    for (long i = 0; i < used; i++) {
        if (dead[i]) continue;
        fprintf(f, "%zu", sizes[i]);
        for (int j = 2; j < depth[i]; j++) fprintf(f, " %p", stacks[i][j]);
        fprintf(f, "\n");
    }
    fclose(f); inside = 0;
}
__attribute__((constructor)) static void init(void) { init_real(); signal(SIGUSR1, start); signal(SIGUSR2, stop); }
