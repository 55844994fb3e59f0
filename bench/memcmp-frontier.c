/* Time libc's memcmp on a short string that ends just before a page that is not mapped
 * in yet (the frontier of a fresh anonymous mapping), and the same after that page is
 * touched. On glibc's AVX-512 memcmp (__memcmp_evex_movbe) strings of 1..31 bytes are
 * read with a masked 32-byte load whose masked-off part reaches into the next page; when
 * that page is not present the processor suppresses the fault with a microcode assist.
 * Why engine/src/bytecmp.rs exists (docs/benchmarks.md, "Ninth sitting").
 *   gcc -O2 -o /tmp/memcmp-frontier bench/memcmp-frontier.c && taskset -c 1 /tmp/memcmp-frontier
 */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

/* ns per memcmp of n bytes at p against a copy elsewhere (called through a volatile
 * pointer so the compiler cannot inline or hoist it). */
static double per_call(const char *p, const char *copy, size_t n) {
  int (*volatile cmp)(const void *, const void *, size_t) = memcmp;
  volatile int sink = 0;
  const int rounds = 200000;
  double t0 = now();
  for (int i = 0; i < rounds; i++) sink += cmp(p, copy, n);
  return (now() - t0) / rounds * 1e9;
}

int main(void) {
  static const size_t sizes[] = {1, 6, 8, 16, 24, 31, 32, 33, 64, 100};
  char copy[128];
  memset(copy, 'k', sizeof copy);
  printf("bytes  mid-page  at frontier  next page touched   (ns per memcmp)\n");
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    size_t n = sizes[s];
    char *map = mmap(0, 2 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED) return 1;
    memset(map, 'k', 4096); /* page 0 present, page 1 not yet */
    double mid = per_call(map + 1024, copy, n);
    double edge = per_call(map + 4096 - n, copy, n);
    map[4096] = 'k'; /* fault page 1 in */
    double touched = per_call(map + 4096 - n, copy, n);
    printf("%5zu  %8.1f  %11.1f  %17.1f\n", n, mid, edge, touched);
    munmap(map, 2 * 4096);
  }
  return 0;
}
