// A malloc counter for servers under load (figure 7 of BENCHMARKS.md): LD_PRELOAD it into a server, then send the
// server SIGUSR2 to have the number of allocations so far written to the file named by MALLOC_COUNTER_FILE.
//
// Counted as one allocation each: malloc, calloc, realloc (every call, as it may move the block), posix_memalign,
// aligned_alloc, memalign, valloc. Frees are not counted. The real work is done by glibc's __libc_* entry points,
// so no dlsym (which itself allocates) is needed.
//
// Build: cc -O2 -shared -fPIC -o malloc-counter.so malloc-counter.c
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static atomic_ulong allocations;

static inline void counted(void) { atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed); }

void *malloc(size_t size) { counted(); return __libc_malloc(size); }
void *calloc(size_t count, size_t size) { counted(); return __libc_calloc(count, size); }
void *realloc(void *pointer, size_t size) { counted(); return __libc_realloc(pointer, size); }
void free(void *pointer) { __libc_free(pointer); }
void *memalign(size_t alignment, size_t size) { counted(); return __libc_memalign(alignment, size); }
void *aligned_alloc(size_t alignment, size_t size) { counted(); return __libc_memalign(alignment, size); }
void *valloc(size_t size) { counted(); return __libc_memalign((size_t)sysconf(_SC_PAGESIZE), size); }
int posix_memalign(void **out, size_t alignment, size_t size) {
    counted();
    void *pointer = __libc_memalign(alignment, size);
    if (pointer == NULL) return ENOMEM;
    *out = pointer;
    return 0;
}

// Async-signal-safe: formats the count by hand and writes it with open/write/close.
static void report(int signal) {
    (void)signal;
    const char *path = getenv("MALLOC_COUNTER_FILE");
    if (path == NULL) return;
    char text[32];
    int at = sizeof(text) - 1;
    text[at] = '\n';
    unsigned long value = atomic_load_explicit(&allocations, memory_order_relaxed);
    do {
        text[--at] = (char)('0' + value % 10);
        value /= 10;
    } while (value > 0 && at > 0);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return;
    ssize_t ignored = write(fd, text + at, sizeof(text) - at);
    (void)ignored;
    close(fd);
}

__attribute__((constructor)) static void install(void) {
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_handler = report;
    action.sa_flags = SA_RESTART;
    sigaction(SIGUSR2, &action, NULL);
}
