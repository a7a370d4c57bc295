/* r3_bench ROUTES REQUESTS [EXPECTED]: C's r3 (libr3, pkg-config r3) on a
 * portico route table, printing portico-route's --bench line plus
 * " rejected=K wrong=W".
 *
 * Patterns are translated to r3's syntax (":name" -> "{name}", "*name" ->
 * "{name:.+}"). Per lookup it does what portico-route does, the way r3's own
 * benchmark does it: a match_entry for the path (r3 cannot reuse one: it
 * copies each captured value with its own allocator and frees them only in
 * match_entry_free, so an entry is reused until a lookup captured values into
 * it, then freed and made anew), r3_tree_matchl, then the
 * endpoint's route for the method; with none, the endpoint's other routes
 * give the 405 allowed set. memory_bytes is mallinfo2's
 * uordblks after building minus before. */
#define _GNU_SOURCE 1
#include <malloc.h>
#include <r3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { kMaxParams = 32, kPasses = 5 };

typedef struct {
  char* method;
  char* pattern; /* as written in ROUTES */
  char* r3_path; /* translated; r3 keeps the pointer, so it lives on */
  char* names[kMaxParams];
  int name_count;
} RouteLine;

typedef struct {
  char* method;
  char* path;
  int path_len;
  int method_bit;
} RequestLine;

static const struct {
  const char* name;
  int bit;
} kMethods[] = {{"GET", METHOD_GET},        {"POST", METHOD_POST},   {"PUT", METHOD_PUT},
                {"DELETE", METHOD_DELETE},  {"PATCH", METHOD_PATCH}, {"HEAD", METHOD_HEAD},
                {"OPTIONS", METHOD_OPTIONS}};
enum { kMethodCount = sizeof kMethods / sizeof kMethods[0] };

static int method_bit(const char* name) {
  for (int i = 0; i < kMethodCount; ++i)
    if (strcmp(kMethods[i].name, name) == 0) return kMethods[i].bit;
  return 0;
}

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static char* read_file(const char* name) {
  FILE* f = fopen(name, "rb");
  if (!f) {
    perror(name);
    exit(2);
  }
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  char* text = malloc((size_t)size + 1);
  if (fread(text, 1, (size_t)size, f) != (size_t)size) {
    perror(name);
    exit(2);
  }
  text[size] = '\0';
  fclose(f);
  return text;
}

/* Splits text into lines in place; returns the count. */
static size_t split_lines(char* text, char*** lines_out) {
  size_t cap = 1024, n = 0;
  char** lines = malloc(cap * sizeof *lines);
  for (char* line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
    if (n == cap) lines = realloc(lines, (cap *= 2) * sizeof *lines);
    lines[n++] = line;
  }
  *lines_out = lines;
  return n;
}

static char* skip_space(char* s) {
  while (*s == ' ' || *s == '\t' || *s == '\r') ++s;
  return s;
}

/* Cuts the next word out of *s in place. */
static char* next_word(char** s) {
  char* w = skip_space(*s);
  char* e = w;
  while (*e && *e != ' ' && *e != '\t' && *e != '\r') ++e;
  if (*e) *e++ = '\0';
  *s = e;
  return w;
}

static char* translate(RouteLine* r) {
  size_t len = strlen(r->pattern);
  char* out = malloc(len * 2 + 16);
  char* o = out;
  const char* p = r->pattern;
  while (*p) {
    if ((*p == ':' || *p == '*') && p > r->pattern && p[-1] == '/') {
      const char kind = *p++;
      const char* end = strchr(p, '/');
      size_t n = end ? (size_t)(end - p) : strlen(p);
      if (r->name_count < kMaxParams) r->names[r->name_count++] = strndup(p, n);
      o += sprintf(o, kind == ':' ? "{%.*s}" : "{%.*s:.+}", (int)n, p);
      p += n;
    } else {
      *o++ = *p++;
    }
  }
  *o = '\0';
  return out;
}

typedef struct {
  int status; /* 200, 404, 405 */
  RouteLine* route;
  int allowed; /* method bits, for 405 */
} Answer;

/* REQUIRES: *entry is NULL or from the previous lookup. */
static Answer lookup(const node* tree, match_entry** entry_slot, const RequestLine* q) {
  match_entry* entry = *entry_slot;
  if (entry && entry->vars->len == 0) {
    entry->path = q->path;
    entry->path_len = q->path_len;
  } else {
    if (entry) match_entry_free(entry);
    entry = *entry_slot = match_entry_createl(q->path, q->path_len);
  }
  entry->request_method = q->method_bit;
  Answer a = {404, NULL, 0};
  node* n = r3_tree_matchl(tree, q->path, q->path_len, entry);
  if (!n || !n->endpoint) return a;
  for (int i = 0; i < n->route_len; ++i) {
    route* r = n->routes[i];
    if (q->method_bit && (r->request_method & q->method_bit)) {
      a.status = 200;
      a.route = r->data;
      return a;
    }
    a.allowed |= r->request_method;
  }
  if (a.allowed) a.status = 405;
  return a;
}

static void format_answer(const Answer* a, const match_entry* entry, char* out, size_t cap) {
  if (a->status == 404) {
    snprintf(out, cap, "404");
  } else if (a->status == 405) {
    /* ASCII order of the names, which kMethods is not in. */
    const char* names[kMethodCount];
    int n = 0;
    for (int i = 0; i < kMethodCount; ++i)
      if (a->allowed & kMethods[i].bit) names[n++] = kMethods[i].name;
    for (int i = 1; i < n; ++i)
      for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; --j) {
        const char* t = names[j];
        names[j] = names[j - 1];
        names[j - 1] = t;
      }
    size_t used = (size_t)snprintf(out, cap, "405 ");
    for (int i = 0; i < n && used < cap; ++i)
      used += (size_t)snprintf(out + used, cap - used, i ? ",%s" : "%s", names[i]);
  } else {
    size_t used = (size_t)snprintf(out, cap, "200 %s", a->route->pattern);
    for (int i = 0; i < entry->vars->len && used < cap; ++i)
      used += (size_t)snprintf(out + used, cap - used, " %s=%s",
                               i < a->route->name_count ? a->route->names[i] : "?",
                               entry->vars->tokens[i]);
  }
}

int main(int argc, char** argv) {
  if (argc < 3 || argc > 4) {
    fputs("usage: r3_bench ROUTES REQUESTS [EXPECTED]\n", stderr);
    return 2;
  }
  char** lines;
  size_t line_count = split_lines(read_file(argv[1]), &lines);
  RouteLine* routes = calloc(line_count + 1, sizeof *routes);
  size_t route_count = 0;
  for (size_t i = 0; i < line_count; ++i) {
    char* s = skip_space(lines[i]);
    if (*s == '\0' || *s == '#') continue;
    RouteLine* r = &routes[route_count++];
    r->method = next_word(&s);
    r->pattern = next_word(&s);
    r->r3_path = translate(r);
  }

  size_t request_line_count = split_lines(read_file(argv[2]), &lines);
  RequestLine* requests = calloc(request_line_count + 1, sizeof *requests);
  size_t request_count = 0;
  for (size_t i = 0; i < request_line_count; ++i) {
    char* s = lines[i];
    RequestLine* q = &requests[request_count];
    q->method = next_word(&s);
    q->path = next_word(&s);
    if (*q->path == '\0') continue;
    q->path[strcspn(q->path, "?#")] = '\0';
    q->path_len = (int)strlen(q->path);
    q->method_bit = method_bit(q->method);
    ++request_count;
  }

  const size_t before = mallinfo2().uordblks;
  const double build_start = now_ns();
  node* tree = r3_tree_create(10);
  size_t rejected = 0;
  for (size_t i = 0; i < route_count; ++i) {
    RouteLine* r = &routes[i];
    int bit = method_bit(r->method);
    char* err = NULL;
    if (!bit ||
        !r3_tree_insert_routel_ex(tree, bit, r->r3_path, (int)strlen(r->r3_path), r, &err)) {
      ++rejected;
      free(err);
    }
  }
  char* err = NULL;
  if (r3_tree_compile(tree, &err) != 0) {
    fprintf(stderr, "r3_tree_compile: %s\n", err ? err : "failed");
    return 2;
  }
  const double build_ns = now_ns() - build_start;
  const size_t memory = mallinfo2().uordblks - before;

  match_entry* entry = NULL;
  size_t matched = 0;
  double best = 0;
  for (int pass = 0; pass <= kPasses; ++pass) { /* pass 0 warms up */
    const double start = now_ns();
    matched = 0;
    for (size_t i = 0; i < request_count; ++i)
      if (lookup(tree, &entry, &requests[i]).status == 200) ++matched;
    const double took = now_ns() - start;
    if (pass == 1 || (pass > 1 && took < best)) best = took;
  }

  long wrong = -1;
  if (argc == 4) {
    size_t expected_count = split_lines(read_file(argv[3]), &lines);
    wrong = 0;
    char got[4096];
    for (size_t i = 0; i < request_count; ++i) {
      Answer a = lookup(tree, &entry, &requests[i]);
      format_answer(&a, entry, got, sizeof got);
      if (i >= expected_count || strcmp(got, lines[i]) != 0) {
        if (getenv("PEER_SHOW_WRONG") && wrong < atol(getenv("PEER_SHOW_WRONG")))
          fprintf(stderr, "wrong: line %zu: got \"%s\" want \"%s\"\n", i + 1, got,
                  i < expected_count ? lines[i] : "<none>");
        ++wrong;
      }
    }
  }
  printf(
      "routes=%zu build_ms=%.2f memory_bytes=%zu requests=%zu ns_per_lookup=%.1f "
      "matched=%zu rejected=%zu wrong=%ld\n",
      route_count, build_ns / 1e6, memory, request_count,
      request_count ? best / (double)request_count : 0.0, matched, rejected, wrong);
  if (entry) match_entry_free(entry);
  r3_tree_free(tree);
  return 0;
}
