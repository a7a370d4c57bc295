// The non-template heart of portico::router: pattern parsing, the mutable
// trie, its frozen layout and lookup.
#include "portico/router.hpp"
#include "portico/detail/swar.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <string>
#include <unordered_map>

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

namespace portico {
inline namespace v0 {

namespace {

constexpr std::array<std::string_view, kStandardMethodCount> kMethodNames = {
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"};

// Patterns longer than this would not fit a node's 16-bit label length.
constexpr std::size_t kMaxPatternBytes = 65535;
// Bounds the lookup's backtrack stack: a frame per segment start at most.
constexpr std::size_t kMaxSegments = 128;
constexpr std::size_t kMaxTypes = 200;

bool is_token_char(char c) {
  // RFC 9110 tchar.
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return c - 'A' + 10;
}

bool type_int(std::string_view s) {
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

bool type_hex(std::string_view s) {
  for (char c : s) {
    if (!is_hex(c)) return false;
  }
  return true;
}

bool type_alpha(std::string_view s) {
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) return false;
  }
  return true;
}

bool type_uuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (std::size_t i = 0; i < 36; ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-') return false;
    } else if (!is_hex(s[i])) {
      return false;
    }
  }
  return true;
}

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool equal_ci(const char* a, const char* b, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

// The length of the common prefix of a[0, n) and b[0, n), 8 bytes a step.
std::size_t common_prefix(const char* a, const char* b, std::size_t n) {
  std::size_t i = 0;
  if constexpr (std::endian::native == std::endian::little) {
    for (; n - i >= 8; i += 8) {
      std::uint64_t x;
      std::uint64_t y;
      std::memcpy(&x, a + i, 8);
      std::memcpy(&y, b + i, 8);
      if (x != y) return i + static_cast<std::size_t>(std::countr_zero(x ^ y) >> 3);
    }
  }
  while (i < n && a[i] == b[i]) ++i;
  return i;
}

class RouteCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "portico.router"; }
  std::string message(int code) const override {
    switch (static_cast<RouteErrc>(code)) {
      case RouteErrc::kBadSyntax:
        return "bad pattern syntax";
      case RouteErrc::kBadMethod:
        return "bad method token";
      case RouteErrc::kEmptyParamName:
        return "empty parameter name";
      case RouteErrc::kDuplicateParamName:
        return "duplicate parameter name";
      case RouteErrc::kCatchAllNotLast:
        return "catch-all is not the last segment";
      case RouteErrc::kUnknownParamType:
        return "unknown parameter type";
      case RouteErrc::kTooManyParams:
        return "too many parameters";
      case RouteErrc::kDuplicateRoute:
        return "duplicate route";
      case RouteErrc::kLimitExceeded:
        return "router limit exceeded";
      case RouteErrc::kFrozen:
        return "route table frozen";
    }
    return "unknown router error";
  }
};

// httprouter's CleanPath: the canonical form of `path` ("//" -> "/",
// "/./" -> "/", "/x/../" -> "/"), always rooted, trailing slash kept.
std::string clean_path(std::string_view path) {
  std::string out;
  out.reserve(path.size() + 1);
  out.push_back('/');
  std::size_t i = 0;
  const std::size_t n = path.size();
  while (i < n) {
    if (path[i] == '/') {
      ++i;
    } else if (path[i] == '.' && (i + 1 == n || path[i + 1] == '/')) {
      ++i;
    } else if (path[i] == '.' && path[i + 1] == '.' && (i + 2 == n || path[i + 2] == '/')) {
      i += 2;
      // Drop the last segment written, if any.
      if (out.size() > 1) {
        out.pop_back();  // its trailing '/'
        while (out.size() > 1 && out.back() != '/') out.pop_back();
      }
    } else {
      while (i < n && path[i] != '/') out.push_back(path[i++]);
      if (i < n) out.push_back('/');
    }
  }
  // A trailing "/." or "/.." still leaves a directory: keep the slash.
  if (out.size() > 1 && out.back() == '/' && !path.empty() && path.back() != '/' &&
      !(path.size() >= 2 && path.substr(path.size() - 2) == "/.") &&
      !(path.size() >= 3 && path.substr(path.size() - 3) == "/..")) {
    out.pop_back();
  }
  return out;
}

}  // namespace

std::string_view method_name(Method method) noexcept {
  return kMethodNames[static_cast<std::size_t>(method)];
}

std::optional<Method> parse_method(std::string_view token) noexcept {
  for (std::size_t i = 0; i < kStandardMethodCount; ++i) {
    if (kMethodNames[i] == token) return static_cast<Method>(i);
  }
  return std::nullopt;
}

const std::error_category& route_category() noexcept {
  static const RouteCategory category;
  return category;
}

std::size_t percent_decode_to(std::string_view raw, char* out) noexcept {
  std::size_t n = 0;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] != '%') {
      out[n++] = raw[i];
      continue;
    }
    if (i + 2 >= raw.size()) return std::string_view::npos;
    if (!is_hex(raw[i + 1]) || !is_hex(raw[i + 2])) return std::string_view::npos;
    out[n++] = static_cast<char>(hex_value(raw[i + 1]) * 16 + hex_value(raw[i + 2]));
    i += 2;
  }
  return n;
}

std::optional<std::string> percent_decode(std::string_view raw) {
  std::string out(raw.size(), '\0');
  const std::size_t n = percent_decode_to(raw, out.data());
  if (n == std::string_view::npos) return std::nullopt;
  out.resize(n);
  return out;
}

namespace detail {

namespace {
#if defined(__linux__) && defined(MAP_POPULATE)
constexpr bool kCanMapPopulated = true;
#else
constexpr bool kCanMapPopulated = false;
#endif
// A transparent huge page (x86-64, and arm64 with 4 KiB pages).
constexpr std::size_t kHugePage = std::size_t{2} << 20;
}  // namespace

void* map_populated(std::size_t bytes) noexcept {
  if (!kCanMapPopulated) return nullptr;
#if defined(__linux__) && defined(MAP_POPULATE)
#if defined(MADV_HUGEPAGE) && defined(MADV_POPULATE_WRITE)
  // Transparent huge pages where the kernel allows them (the whole 2 MiB
  // ranges inside the block; the rest stays in 4 KiB pages, so nothing more
  // is resident), then every page written in one call (Linux 5.14+). The
  // first write to each page of a fresh mapping is what costs, more so in a
  // virtual machine: with 2 MiB pages a 120k-route build touches a few dozen
  // instead of thousands (bench/README.md). On an older kernel the second
  // call fails and pages arrive on first use.
  //
  // The block starts on a 2 MiB boundary (mapped with 2 MiB to spare, the
  // spare unmapped again): wherever mmap put it, up to 2 MiB at its start
  // would be 4 KiB pages, each about as slow to touch first as a page fault.
  const std::size_t span = bytes + kHugePage;
  void* mapped = ::mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mapped == MAP_FAILED) return nullptr;
  const auto first = reinterpret_cast<std::uintptr_t>(mapped);
  const std::uintptr_t start = (first + kHugePage - 1) & ~std::uintptr_t{kHugePage - 1};
  const std::uintptr_t end = start + bytes;
  const std::uintptr_t page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  const std::uintptr_t end_page = (end + page - 1) & ~(page - 1);
  if (start != first) (void)::munmap(mapped, start - first);
  if (first + span > end_page) {
    (void)::munmap(reinterpret_cast<void*>(end_page), first + span - end_page);
  }
  void* memory = reinterpret_cast<void*>(start);
  (void)::madvise(memory, bytes, MADV_HUGEPAGE);
  (void)::madvise(memory, bytes, MADV_POPULATE_WRITE);
  return memory;
#else
  void* memory = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  return memory == MAP_FAILED ? nullptr : memory;
#endif
#else
  (void)bytes;
  return nullptr;
#endif
}

void populate(void* memory, std::size_t bytes) noexcept {
#if defined(__linux__) && defined(MADV_POPULATE_WRITE)
  if (bytes < kPopulateMin) return;
  const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto begin = (reinterpret_cast<std::uintptr_t>(memory) + page - 1) & ~(page - 1);
  const auto end = (reinterpret_cast<std::uintptr_t>(memory) + bytes) & ~(page - 1);
  if (end > begin) {
    (void)::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_POPULATE_WRITE);
  }
#else
  (void)memory;
  (void)bytes;
#endif
}

void unmap_populated(void* memory, std::size_t bytes) noexcept {
#if defined(__linux__) && defined(MAP_POPULATE)
  (void)::munmap(memory, bytes);
#else
  (void)memory;
  (void)bytes;
#endif
}

namespace {

// A fast 64-bit hash of a path, 8 bytes per step (not for untrusted keys in
// a hash table that grows: this one is built once, from the routes).
inline std::uint64_t hash_path(const char* p, std::size_t n) noexcept {
  // Three independent 8-byte loads (head, middle, tail) and multiplies: a
  // few cycles for any length. Paths sharing all three words only lengthen
  // a probe run; every hit is confirmed by comparing the whole path.
  std::uint64_t head = 0;
  std::uint64_t middle = 0;
  std::uint64_t tail = 0;
  if (n >= 8) {
    std::memcpy(&head, p, 8);
    std::memcpy(&middle, p + (n - 8) / 2, 8);
    std::memcpy(&tail, p + n - 8, 8);
  } else if (n >= 4) {
    // Two overlapping 4-byte loads cover every byte; no variable-length copy.
    std::uint32_t first;
    std::uint32_t last;
    std::memcpy(&first, p, 4);
    std::memcpy(&last, p + n - 4, 4);
    head = std::uint64_t{first} << 32 | last;
  } else if (n > 0) {
    head = std::uint64_t{static_cast<unsigned char>(p[0])} |
           std::uint64_t{static_cast<unsigned char>(p[n / 2])} << 8 |
           std::uint64_t{static_cast<unsigned char>(p[n - 1])} << 16;
  }
  std::uint64_t h = (head * 0x9E3779B97F4A7C15ull) ^ (middle * 0xC2B2AE3D27D4EB4Full) ^
                    (tail * 0x165667B19E3779F9ull) ^ n;
  h ^= h >> 31;
  h *= 0xD6E8FEB86659FD93ull;
  return h ^ (h >> 32);
}

// The byte each index filters on besides the length (see PathIndex): the
// static index a path's last byte, the tail index (where every path ends in
// '/') the byte after the leading '/'; 0 when there is none.
inline unsigned last_byte(std::string_view path) noexcept {
  return path.empty() ? 0u : static_cast<unsigned char>(path.back());
}
inline unsigned second_byte(std::string_view path) noexcept {
  return path.size() < 2 ? 0u : static_cast<unsigned char>(path[1]);
}

}  // namespace

// ---- the builder ------------------------------------------------------------

namespace {

struct Piece {
  std::uint8_t kind;  // kStatic, kParam, kCatchAll
  std::uint8_t type;  // kUntyped or a type id
  std::size_t begin;  // static text or the name, as offsets into the pattern
  std::size_t length;
  std::size_t position;  // where the piece starts in the pattern (for errors)
  std::size_t end;       // where the next piece starts: past a wildcard's '}'
};

// The first of "{}*:" in a parameter name, or npos (a byte loop: per byte,
// find_first_of would search the set).
std::size_t bad_name_byte(std::string_view name) {
  for (std::size_t k = 0; k < name.size(); ++k) {
    const char c = name[k];
    if (c == '{' || c == '}' || c == '*' || c == ':') return k;
  }
  return std::string_view::npos;
}

constexpr std::uint32_t kNil = 0xFFFFFFFFu;

struct BuildSlot {
  std::uint32_t handler;
  std::uint32_t names;  // the route's parameter names: offset into Impl::names
  std::uint32_t next;   // next slot of the same node, kNil at the end
  MethodId method;
};

// A builder node: 32 bytes, no owned memory, so growing the node vector is a
// plain copy. Children are singly linked lists of node indices: static ones
// sorted by first label byte, wildcards in priority order.
struct BuildNode {
  std::uint32_t label_offset = 0;  // into Impl::text
  std::uint32_t label_length = 0;
  std::uint32_t first_static = kNil;
  std::uint32_t first_wild = kNil;
  std::uint32_t next = kNil;  // next sibling in the parent's list
  std::uint32_t first_slot = kNil;
  std::uint16_t static_count = 0;
  std::uint8_t wild_count = 0;
  std::uint8_t slot_count = 0;
  std::uint8_t kind = kStatic;
  std::uint8_t type = kUntyped;
  unsigned char first_byte = 0;
};

std::uint32_t wild_rank(const BuildNode& node) {
  if (node.kind == kCatchAll) return 512;
  return node.type == kUntyped ? 256 : node.type;
}

// The allocator of the builder's big arrays: blocks of at least
// kMapPopulatedMin bytes come from map_populated() (every page mapped in one
// system call), smaller ones from operator new.
template <class T>
struct BuildAllocator {
  using value_type = T;
  BuildAllocator() noexcept = default;
  template <class U>
  explicit BuildAllocator(const BuildAllocator<U>&) noexcept {}

  static bool mapped(std::size_t bytes) noexcept {
    return kCanMapPopulated && bytes >= kMapPopulatedMin;
  }
  // A mapped block is rounded up to whole 2 MiB pages (at most 2 MiB more
  // resident per array, while the builder lives): a 4 KiB page at the end
  // of one costs about as much to touch first as a page fault
  // (bench/README.md).
  static std::size_t mapped_length(std::size_t bytes) noexcept {
    return (bytes + kHugePage - 1) & ~(kHugePage - 1);
  }
  T* allocate(std::size_t n) {
    const std::size_t bytes = n * sizeof(T);
    if (!mapped(bytes)) return static_cast<T*>(::operator new(bytes));
    void* memory = map_populated(mapped_length(bytes));
    if (memory == nullptr) throw std::bad_alloc();
    return static_cast<T*>(memory);
  }
  void deallocate(T* memory, std::size_t n) noexcept {
    const std::size_t bytes = n * sizeof(T);
    if (mapped(bytes)) {
      unmap_populated(memory, mapped_length(bytes));
    } else {
      ::operator delete(static_cast<void*>(memory));
    }
  }
  friend bool operator==(const BuildAllocator&, const BuildAllocator&) noexcept { return true; }
};

template <class T>
using BuildVector = std::vector<T, BuildAllocator<T>>;

std::string quote(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out.push_back('"');
  out.append(s);
  out.push_back('"');
  return out;
}

}  // namespace

struct TrieBuilder::Impl {
  BuildVector<char> text;  // every pattern added, back to back; labels point in here
  BuildVector<BuildNode> nodes;
  BuildVector<BuildSlot> slots;
  std::size_t route_count = 0;
  // Scratch space reused by every add(), so adding allocates only as the
  // tables grow.
  std::vector<Piece> pieces;
  std::string joined_names;
  std::vector<std::string_view> route_names;
  // Where the previous add() passed through static nodes: (byte offset in
  // its pattern just past the node's label, node), by offset. Route tables
  // usually list routes that share long prefixes one after another; the next
  // add() starts from the deepest node inside the common prefix instead of
  // the root, and keeps the checkpoints up to there: a node's text never
  // changes (a split gives the new node the shorter text), so they stay true
  // for any later pattern with that prefix.
  struct Checkpoint {
    std::uint32_t end;
    std::uint32_t node;
  };
  std::vector<Checkpoint> checkpoints;
  std::string last_pattern;
  std::vector<std::string> custom_methods;
  std::vector<std::string> type_names{"int", "uuid", "hex", "alpha"};
  std::vector<ParamPredicate> predicates{type_int, type_uuid, type_hex, type_alpha};
  // Interned route parameter-name lists: joined names -> offset in `names`.
  std::unordered_map<std::string, std::uint32_t> name_lists;
  std::vector<std::string> names;
  // The previous route's joined names and their offset: neighbours in a
  // table usually share them, which saves hashing the list.
  std::string last_joined_names;
  std::uint32_t last_names_offset = kNil;
  // What freeze() sizes its indexes by, counted as routes arrive instead of
  // by a walk over the trie: nodes that fully static routes end at, and the
  // bytes of their paths; and every node that a route `<static text>:param`
  // gave the param its first route below (end: the text's length), which
  // freeze() checks for still having that param as its only wildcard.
  std::size_t static_endpoints = 0;
  std::size_t static_path_bytes = 0;
  std::vector<Checkpoint> tail_candidates;

  Impl() { nodes.emplace_back(); }

  std::string method_text(MethodId id) const {
    if (id == kAnyMethod) return "ANY";
    if (id < kStandardMethodCount) return std::string(kMethodNames[id]);
    return custom_methods[id - kStandardMethodCount];
  }

  RouteError parse(std::string_view pattern, std::size_t from, std::vector<Piece>& out) const;
  std::uint32_t insert_static(std::uint32_t node, const char* bytes, std::uint32_t length,
                              std::uint32_t at);
  std::uint32_t insert_wild(std::uint32_t node, std::uint8_t kind, std::uint8_t type);
};

// Parses pattern[from, size) into `out`, which holds the pieces of
// pattern[0, from) already (from the previous pattern, which shares those
// bytes: see add()). REQUIRES: `from` is 0 or where such a piece ends.
RouteError TrieBuilder::Impl::parse(std::string_view pattern, std::size_t from,
                                    std::vector<Piece>& out) const {
  auto fail = [&](RouteErrc code, std::size_t at, std::string_view what) {
    return RouteError(code, at,
                      "pattern " + quote(pattern) + ": " + std::string(what) + " (at byte " +
                          std::to_string(at) + ")");
  };
  if (pattern.size() > kMaxPatternBytes) {
    return fail(RouteErrc::kLimitExceeded, kMaxPatternBytes, "longer than 65535 bytes");
  }
  if (pattern.empty() || pattern[0] != '/') {
    return fail(RouteErrc::kBadSyntax, 0, "must start with '/'");
  }
  // Only a pattern longer than kMaxSegments bytes can have more slashes.
  if (pattern.size() > kMaxSegments &&
      static_cast<std::size_t>(std::count(pattern.begin(), pattern.end(), '/')) > kMaxSegments) {
    return fail(RouteErrc::kLimitExceeded, 0, "more than 128 segments");
  }
  std::size_t i = from;
  std::size_t static_begin = from;
  std::size_t params = 0;
  for (const Piece& p : out) params += p.kind != kStatic ? 1 : 0;
  auto flush_static = [&](std::size_t end) {
    if (end > static_begin)
      out.push_back({kStatic, kUntyped, static_begin, end - static_begin, static_begin, end});
  };
  // Without braces only a segment's first byte can start a wildcard: the
  // scan jumps from one '/' to the next instead of visiting every byte.
  const std::string_view rest = pattern.substr(from);
  const bool braces = rest.find('{') != std::string_view::npos ||
                      rest.find('}') != std::string_view::npos;
  while (i < pattern.size()) {
    const char c = pattern[i];
    const bool segment_start = i > 0 && pattern[i - 1] == '/';
    if (c == '}') return fail(RouteErrc::kBadSyntax, i, "unmatched '}'");
    if (c == '{' && !segment_start) {
      return fail(RouteErrc::kBadSyntax, i, "a {...} wildcard must span a whole segment");
    }
    if (!segment_start || (c != ':' && c != '*' && c != '{')) {
      if (braces) {
        ++i;
      } else {
        const std::size_t slash = pattern.find('/', i);
        i = slash == std::string_view::npos ? pattern.size() : slash + 1;
      }
      continue;
    }
    // A wildcard segment starts at i.
    flush_static(i);
    const std::size_t start = i;
    std::size_t end = pattern.find('/', i);
    if (end == std::string_view::npos) end = pattern.size();
    std::uint8_t kind = kParam;
    std::uint8_t type = kUntyped;
    std::size_t name_begin = 0;
    std::size_t name_length = 0;
    if (c == '{') {
      const std::size_t close = pattern.find('}', i);
      if (close == std::string_view::npos || close > end) {
        return fail(RouteErrc::kBadSyntax, i, "unclosed '{'");
      }
      if (close + 1 != end) {
        return fail(RouteErrc::kBadSyntax, close + 1,
                    "text after '}' in a segment: a {...} wildcard must span a whole segment");
      }
      std::size_t inner = i + 1;
      if (inner < close && pattern[inner] == '*') {
        kind = kCatchAll;
        ++inner;
      }
      std::string_view body = pattern.substr(inner, close - inner);
      const std::size_t colon = body.find(':');
      std::string_view name = body.substr(0, colon);
      if (colon != std::string_view::npos) {
        const std::string_view type_name = body.substr(colon + 1);
        if (kind == kCatchAll) {
          return fail(RouteErrc::kBadSyntax, inner + colon, "a catch-all cannot be typed");
        }
        auto it = std::find(type_names.begin(), type_names.end(), type_name);
        if (it == type_names.end()) {
          return fail(RouteErrc::kUnknownParamType, inner + colon + 1,
                      "unknown parameter type " + quote(type_name));
        }
        type = static_cast<std::uint8_t>(it - type_names.begin());
      }
      if (bad_name_byte(name) != std::string_view::npos) {
        return fail(RouteErrc::kBadSyntax, inner, "bad character in parameter name");
      }
      name_begin = inner;
      name_length = name.size();
    } else {
      if (c == '*') kind = kCatchAll;
      name_begin = i + 1;
      name_length = end - name_begin;
      const std::string_view name = pattern.substr(name_begin, name_length);
      const std::size_t bad = bad_name_byte(name);
      if (bad != std::string_view::npos) {
        return fail(RouteErrc::kBadSyntax, name_begin + bad, "bad character in parameter name");
      }
    }
    if (name_length == 0) {
      return fail(RouteErrc::kEmptyParamName, start, "empty parameter name");
    }
    if (kind == kCatchAll && end != pattern.size()) {
      return fail(RouteErrc::kCatchAllNotLast, start, "catch-all must be the last segment");
    }
    const std::string_view name = pattern.substr(name_begin, name_length);
    for (const Piece& p : out) {
      if (p.kind != kStatic && pattern.substr(p.begin, p.length) == name) {
        return fail(RouteErrc::kDuplicateParamName, start,
                    "duplicate parameter name " + quote(name));
      }
    }
    if (++params > Params::kCapacity) {
      return fail(RouteErrc::kTooManyParams, start, "more than 16 parameters");
    }
    out.push_back({kind, type, name_begin, name_length, start, end});
    i = end;
    static_begin = end;
  }
  flush_static(pattern.size());
  return {};
}

// Inserts the static text bytes[0, length) below `node` (splitting labels as
// needed) and returns the node it ends at. `at` is where the bytes start in
// the pattern, for the checkpoints. Only the text of a new leaf is copied
// into `text`: shared prefixes are stored once.
std::uint32_t TrieBuilder::Impl::insert_static(std::uint32_t node, const char* bytes,
                                               std::uint32_t length, std::uint32_t at) {
  while (length > 0) {
    const auto want = static_cast<unsigned char>(bytes[0]);
    // Find the child with this first byte, or where it belongs.
    std::uint32_t* link = &nodes[node].first_static;
    while (*link != kNil && nodes[*link].first_byte < want) link = &nodes[*link].next;
    if (*link == kNil || nodes[*link].first_byte != want) {
      const auto fresh = static_cast<std::uint32_t>(nodes.size());
      BuildNode leaf;
      leaf.label_offset = static_cast<std::uint32_t>(text.size());
      leaf.label_length = length;
      leaf.first_byte = want;
      leaf.next = *link;
      *link = fresh;  // before push_back: `link` points into `nodes`
      ++nodes[node].static_count;
      nodes.push_back(leaf);
      text.insert(text.end(), bytes, bytes + length);
      checkpoints.push_back({at + length, fresh});
      return fresh;
    }
    const std::uint32_t child = *link;
    const std::uint32_t child_offset = nodes[child].label_offset;
    const std::uint32_t child_length = nodes[child].label_length;
    const std::uint32_t limit = std::min(child_length, length);
    const auto common = static_cast<std::uint32_t>(
        1 + common_prefix(text.data() + child_offset + 1, bytes + 1, limit - 1));
    if (common < child_length) {
      // Split: a new node takes the common prefix; the old child keeps the rest.
      const auto middle = static_cast<std::uint32_t>(nodes.size());
      *link = middle;
      BuildNode split;
      split.label_offset = child_offset;
      split.label_length = common;
      split.first_byte = want;
      split.next = nodes[child].next;
      split.first_static = child;
      split.static_count = 1;
      BuildNode& rest = nodes[child];
      rest.label_offset = child_offset + common;
      rest.label_length = child_length - common;
      rest.first_byte = static_cast<unsigned char>(text[child_offset + common]);
      rest.next = kNil;
      nodes.push_back(split);
      node = middle;
    } else {
      node = child;
    }
    bytes += common;
    at += common;
    length -= common;
    checkpoints.push_back({at, node});
  }
  return node;
}

std::uint32_t TrieBuilder::Impl::insert_wild(std::uint32_t node, std::uint8_t kind,
                                             std::uint8_t type) {
  BuildNode probe;
  probe.kind = kind;
  probe.type = type;
  const std::uint32_t rank = wild_rank(probe);
  std::uint32_t* link = &nodes[node].first_wild;
  for (; *link != kNil; link = &nodes[*link].next) {
    const std::uint32_t r = wild_rank(nodes[*link]);
    if (r == rank) return *link;
    if (r > rank) break;
  }
  const auto fresh = static_cast<std::uint32_t>(nodes.size());
  probe.next = *link;
  *link = fresh;
  ++nodes[node].wild_count;
  nodes.push_back(probe);
  return fresh;
}

TrieBuilder::TrieBuilder() : impl_(std::make_unique<Impl>()) {}
TrieBuilder::~TrieBuilder() = default;
TrieBuilder::TrieBuilder(TrieBuilder&&) noexcept = default;
TrieBuilder& TrieBuilder::operator=(TrieBuilder&&) noexcept = default;

std::size_t TrieBuilder::route_count() const noexcept {
  return impl_->route_count;
}

void TrieBuilder::reserve(std::size_t routes, std::size_t pattern_bytes) {
  Impl& b = *impl_;
  // 1.5 builder nodes per route covers realistic tables, 1.37 included
  // (bench/README.md); a larger one regrows once, which costs more than the
  // slack: mapping twice the size and copying. Large blocks are mapped with
  // every page present, so over-reserving costs time too.
  b.nodes.reserve(b.nodes.size() + routes + routes / 2);
  b.slots.reserve(b.slots.size() + routes);
  // Only new leaf labels are stored: a quarter of the pattern bytes covers
  // all but all-static tables (bench/README.md).
  b.text.reserve(b.text.size() + pattern_bytes / 4);
}

void TrieBuilder::shrink_to_fit() {
  Impl& b = *impl_;
  b.nodes.shrink_to_fit();
  b.slots.shrink_to_fit();
  b.text.shrink_to_fit();
}

MethodId TrieBuilder::intern_method(std::string_view token, RouteError& error) {
  if (auto m = parse_method(token)) return static_cast<MethodId>(*m);
  if (token.empty() || !std::all_of(token.begin(), token.end(), is_token_char)) {
    error = RouteError(RouteErrc::kBadMethod, 0,
                       "method " + quote(token) + ": not an HTTP method token");
    return kUnknownMethod;
  }
  auto& customs = impl_->custom_methods;
  auto it = std::find(customs.begin(), customs.end(), token);
  if (it != customs.end()) {
    return static_cast<MethodId>(kStandardMethodCount + (it - customs.begin()));
  }
  if (kStandardMethodCount + customs.size() >= kMaxMethodIds) {
    error = RouteError(RouteErrc::kLimitExceeded, 0,
                       "method " + quote(token) + ": more than 53 custom methods");
    return kUnknownMethod;
  }
  customs.emplace_back(token);
  return static_cast<MethodId>(kStandardMethodCount + customs.size() - 1);
}

RouteError TrieBuilder::add_param_type(std::string_view name, ParamPredicate predicate) {
  auto& types = impl_->type_names;
  if (name.empty() || name.find_first_of("{}/:*") != std::string_view::npos ||
      predicate == nullptr) {
    return RouteError(RouteErrc::kBadSyntax, 0,
                      "parameter type " + quote(name) + ": bad name or null predicate");
  }
  if (std::find(types.begin(), types.end(), name) != types.end()) {
    return RouteError(RouteErrc::kBadSyntax, 0,
                      "parameter type " + quote(name) + ": already registered");
  }
  if (types.size() >= kMaxTypes) {
    return RouteError(RouteErrc::kLimitExceeded, 0,
                      "parameter type " + quote(name) + ": more than 200 types");
  }
  types.emplace_back(name);
  impl_->predicates.push_back(predicate);
  return {};
}

RouteError TrieBuilder::add(MethodId method, std::string_view method_text, std::string_view pattern,
                            std::uint32_t handler) {
  Impl& b = *impl_;
  (void)method_text;
  // The previous pattern's pieces that end before the common prefix does are
  // this pattern's too (parsing is left to right, and a piece's end is
  // decided by the byte there), already checked: only the rest is parsed.
  const std::size_t common =
      common_prefix(b.last_pattern.data(), pattern.data(),
                    std::min(b.last_pattern.size(), pattern.size()));
  std::size_t kept = 0;
  std::size_t parsed_to = 0;
  while (kept < b.pieces.size() && b.pieces[kept].end < common) parsed_to = b.pieces[kept++].end;
  b.pieces.resize(kept);
  // On an error, nothing of this pattern is kept: `pieces` and
  // `last_pattern` (and so the checkpoints) describe the same pattern.
  auto forget = [&b] {
    b.pieces.clear();
    b.last_pattern.clear();
  };
  if (RouteError error = b.parse(pattern, parsed_to, b.pieces)) {
    forget();
    return error;
  }

  // The route's parameter names, interned: routes share one copy of a list.
  b.joined_names.clear();
  b.route_names.clear();
  for (const Piece& p : b.pieces) {
    if (p.kind == kStatic) continue;
    b.route_names.push_back(pattern.substr(p.begin, p.length));
    b.joined_names.append(pattern.substr(p.begin, p.length));
    b.joined_names.push_back('\0');
  }
  std::uint32_t names_offset = kNil;
  if (b.last_names_offset != kNil && b.joined_names == b.last_joined_names) {
    names_offset = b.last_names_offset;
  } else if (auto found = b.name_lists.find(b.joined_names); found != b.name_lists.end()) {
    names_offset = found->second;
  } else if (b.names.size() + b.route_names.size() > 0xFFFFFFu) {
    forget();
    return RouteError(RouteErrc::kLimitExceeded, 0,
                      "pattern " + quote(pattern) + ": too many distinct parameter names");
  }

  // Nodes created here are never left dangling: a duplicate is found only at
  // an endpoint that already existed, so the whole path did too.
  //
  // Resume from the previous route's deepest static node inside the common
  // prefix. That is safe: parsing is left to right, so a shared prefix that
  // ends inside (or at the end of) a static piece parses to the same pieces.
  std::uint32_t node = 0;
  std::uint32_t resume = 0;
  std::size_t keep = b.checkpoints.size();
  while (keep > 0 && b.checkpoints[keep - 1].end > common) --keep;
  if (keep > 0) {
    node = b.checkpoints[keep - 1].node;
    resume = b.checkpoints[keep - 1].end;
  }
  b.checkpoints.resize(keep);
  std::uint32_t parent = node;  // of the last piece's node
  for (const Piece& p : b.pieces) {
    const auto piece_end = static_cast<std::uint32_t>(p.begin + p.length);
    if (piece_end <= resume) continue;
    parent = node;
    if (p.kind == kStatic) {
      const auto from = std::max(static_cast<std::uint32_t>(p.begin), resume);
      node = b.insert_static(node, pattern.data() + from, piece_end - from, from);
    } else {
      node = b.insert_wild(node, p.kind, p.type);
    }
  }
  b.last_pattern.assign(pattern);

  for (std::uint32_t s = b.nodes[node].first_slot; s != kNil; s = b.slots[s].next) {
    if (b.slots[s].method == method) {
      // The other route has this pattern's shape with its own names; spell
      // it in the canonical syntax.
      const std::uint32_t other_names = b.slots[s].names;
      std::string other_pattern;
      std::size_t k = 0;
      for (const Piece& p : b.pieces) {
        if (p.kind == kStatic) {
          other_pattern.append(pattern.substr(p.begin, p.length));
          continue;
        }
        const std::string& name = b.names[other_names + k++];
        if (p.kind == kCatchAll) {
          other_pattern += "*" + name;
        } else if (p.type == kUntyped) {
          other_pattern += ":" + name;
        } else {
          other_pattern += "{" + name + ":" + b.type_names[p.type] + "}";
        }
      }
      // The whole pattern is at fault, not one byte of it: position 0 and no
      // "at byte" in the message.
      return RouteError(RouteErrc::kDuplicateRoute, 0,
                        "pattern " + quote(pattern) + ": duplicate route: " +
                            b.method_text(method) + " " + quote(other_pattern) +
                            " was added before (same method, same pattern up to parameter "
                            "names)");
    }
  }

  if (names_offset == kNil) {
    names_offset = static_cast<std::uint32_t>(b.names.size());
    for (std::string_view n : b.route_names) b.names.emplace_back(n);
    b.name_lists.emplace(b.joined_names, names_offset);
  }
  if (names_offset != b.last_names_offset) {
    b.last_joined_names.swap(b.joined_names);
    b.last_names_offset = names_offset;
  }

  ++b.route_count;
  if (b.nodes[node].slot_count == 0) {
    const Piece& last = b.pieces.back();
    if (b.route_names.empty()) {
      ++b.static_endpoints;
      b.static_path_bytes += pattern.size() + 2;
    } else if (b.route_names.size() == 1 && last.kind == kParam && last.type == kUntyped) {
      // The param is a route's only wildcard, so all before it is static.
      b.tail_candidates.push_back({static_cast<std::uint32_t>(last.position), parent});
    }
  }
  const auto slot = static_cast<std::uint32_t>(b.slots.size());
  b.slots.push_back({handler, names_offset, b.nodes[node].first_slot, method});
  b.nodes[node].first_slot = slot;
  ++b.nodes[node].slot_count;
  return {};
}

namespace {

// An index being filled: open addressing into `table`, paths appended to
// `paths`; `key` is the byte it filters on besides the length. A table of
// 100k+ entries is megabytes: each insert's first probe would be a cache
// miss, waited for one at a time. So insert() prefetches the entry's home
// slot and queues it; it is placed kLookahead inserts later, in the same
// order (the same table as placing it at once).
struct IndexFill {
  struct Queued {
    std::uint32_t slot;  // home slot
    std::uint32_t node;
    std::uint32_t path;  // offset in `paths`
  };
  static constexpr std::size_t kLookahead = 16;
  PathIndex index;
  std::uint32_t* table = nullptr;
  char* paths = nullptr;
  std::size_t cursor = 0;
  std::size_t count = 0;
  unsigned (*key)(std::string_view) = nullptr;
  std::array<Queued, kLookahead> queue{};

  void start(Arena& arena, std::size_t entries, std::size_t path_bytes,
             unsigned (*key_of)(std::string_view)) {
    if (entries == 0) return;
    table = arena.allocate_array<std::uint32_t>(entries * 2);
    std::memset(table, 0, entries * 8);
    paths = arena.allocate_array<char>(path_bytes);
    key = key_of;
    index.entries = table;
    index.paths = paths;
    index.mask = static_cast<std::uint32_t>(entries - 1);
  }
  void place(const Queued& entry) {
    std::uint32_t slot = entry.slot;
    while (table[slot * 2] != 0) slot = (slot + 1) & index.mask;
    table[slot * 2] = entry.node + 1;
    table[slot * 2 + 1] = entry.path;
  }
  void insert(std::string_view text, std::uint32_t node) {
    const auto slot = static_cast<std::uint32_t>(hash_path(text.data(), text.size()) & index.mask);
    __builtin_prefetch(table + std::size_t{slot} * 2, 1);
    Queued& oldest = queue[count % kLookahead];
    if (count >= kLookahead) place(oldest);
    oldest = {slot, node, static_cast<std::uint32_t>(cursor)};
    const auto length = static_cast<std::uint16_t>(text.size());
    std::memcpy(paths + cursor, &length, 2);
    std::memcpy(paths + cursor + 2, text.data(), text.size());
    cursor += text.size() + 2;
    index.lengths |= std::uint64_t{1} << std::min<std::size_t>(text.size(), 63);
    index.keys |= std::uint64_t{1} << (key(text) & 63u);
    ++count;
  }
  // Places what is still queued, oldest first.
  void finish() {
    const std::size_t queued = std::min(count, kLookahead);
    for (std::size_t k = count - queued; k < count; ++k) place(queue[k % kLookahead]);
  }
};

}  // namespace

FrozenTrie TrieBuilder::freeze() const {
  const Impl& b = *impl_;
  FrozenTrie t;

  // Every byte of `text` is part of exactly one label (leaves append their
  // label; splits only divide one), so it is the labels' total size.
  const std::size_t label_bytes = b.text.size();
  const std::size_t slot_total = b.slots.size();

  // A param node whose only child is static text without routes of its own
  // (`:owner` and the "/" after it, in "/repos/:owner/:repo") is laid out as
  // one node: the param, then that text as its label, then the text's
  // children. A lookup visits one node per such segment instead of two.
  auto fused_text = [&b](const BuildNode& node) -> std::uint32_t {
    if (node.kind != kParam || node.first_wild != kNil || node.first_static == kNil) return kNil;
    const BuildNode& text = b.nodes[node.first_static];
    return text.next == kNil && text.slot_count == 0 ? node.first_static : kNil;
  };
  std::size_t fused = 0;
  bool all_static = true;
  for (const BuildNode& node : b.nodes) {
    fused += fused_text(node) != kNil ? 1 : 0;
    all_static = all_static && node.kind == kStatic;
  }
  const std::size_t node_count = b.nodes.size() - fused;

  // A node reached through static text that ends in '/' and whose only
  // wildcard child is a plain parameter with routes: `/users/` of
  // `/users/:id`. The tail index finds it by that text (find_tail()).
  auto tail_parent = [&b](const BuildNode& node) {
    if (node.first_wild == kNil || node.label_length == 0 ||
        b.text[node.label_offset + node.label_length - 1] != '/') {
      return false;
    }
    const BuildNode& param = b.nodes[node.first_wild];
    return param.next == kNil && param.kind == kParam && param.type == kUntyped &&
           param.slot_count != 0;
  };

  // The indexes' entries and bytes, known first so that one arena chunk of
  // the exact size holds the whole table and the layout pass below fills
  // the indexes as it goes (counted by add(); no path exceeds 65535 bytes).
  const std::size_t static_endpoints = b.static_endpoints;
  std::size_t static_path_bytes = b.static_path_bytes;
  std::size_t tail_parents = 0;
  std::size_t tail_path_bytes = 0;
  for (const Impl::Checkpoint& candidate : b.tail_candidates) {
    if (tail_parent(b.nodes[candidate.node])) {
      ++tail_parents;
      tail_path_bytes += candidate.end + 2;
    }
  }
  // The static fast path: every endpoint reached through static text only,
  // by its full path (load factor <= 1/2; 8 bytes per entry plus the path).
  // Worth it when most routes are static: then most lookups end in one
  // probe, while on parameterised tables the probe would only add a miss to
  // every lookup (bench/README.md).
  const bool build_static_index = static_endpoints != 0 && static_endpoints * 2 >= b.route_count;
  const bool build_tail_index = tail_parents != 0;
  auto index_entries = [](bool build, std::size_t items) -> std::size_t {
    if (!build) return 0;
    std::size_t entries = 2;
    while (entries < items * 2) entries *= 2;
    return entries;
  };
  const std::size_t static_entries = index_entries(build_static_index, static_endpoints);
  const std::size_t tail_entries = index_entries(build_tail_index, tail_parents);
  if (!build_static_index) static_path_bytes = 0;

  std::size_t name_bytes = 0;
  for (const std::string& n : b.names) name_bytes += n.size();
  std::size_t custom_bytes = 0;
  for (const std::string& m : b.custom_methods) custom_bytes += m.size();

  // One chunk holds it all: size it exactly.
  const std::size_t total =
      node_count * sizeof(TrieNode) + alignof(TrieNode) + slot_total * sizeof(TrieSlot) +
      alignof(TrieSlot) + b.names.size() * sizeof(std::string_view) + alignof(std::string_view) +
      b.predicates.size() * sizeof(ParamPredicate) + alignof(ParamPredicate) +
      b.custom_methods.size() * sizeof(std::string_view) + alignof(std::string_view) + node_count +
      label_bytes + name_bytes + custom_bytes + (static_entries + tail_entries) * 8 +
      2 * alignof(std::uint32_t) + static_path_bytes + tail_path_bytes + 64;
  t.arena_ = Arena(total);

  auto* nodes = t.arena_.allocate_array<TrieNode>(node_count);
  auto* slots = t.arena_.allocate_array<TrieSlot>(slot_total);
  auto* names = t.arena_.allocate_array<std::string_view>(b.names.size());
  auto* predicates = t.arena_.allocate_array<ParamPredicate>(b.predicates.size());
  auto* customs = t.arena_.allocate_array<std::string_view>(b.custom_methods.size());
  auto* first_bytes = t.arena_.allocate_array<unsigned char>(node_count);
  auto* labels = t.arena_.allocate_array<char>(label_bytes == 0 ? 1 : label_bytes);

  IndexFill statics;
  IndexFill tails;
  statics.start(t.arena_, static_entries, static_path_bytes, last_byte);
  tails.start(t.arena_, tail_entries, tail_path_bytes, second_byte);
  const bool fill_indexes = build_static_index || build_tail_index;

  // Layout, in one depth-first pass: a node's children get one contiguous
  // block of indices when the node is laid out, and its first child is laid
  // out next, so the nodes a lookup touches along a path sit close together.
  // A node reached through static text alone carries the length of the text
  // before its label, so its full text is at hand for the indexes: `path`
  // holds the text of the last such node visited, whose first `before`
  // bytes are this node's parent's (depth-first order).
  constexpr std::uint32_t kBelowWildcard = kNil;
  struct Pending {
    std::uint32_t node;    // build node
    std::uint32_t layout;  // its index in `nodes`
    std::uint32_t before;  // length of the static text before it, or kBelowWildcard
  };
  std::vector<Pending> stack{{0, 0, 0}};
  std::vector<std::uint32_t> children;
  std::string path;
  std::uint32_t next_index = 1;
  std::uint32_t label_cursor = 0;
  std::uint32_t slot_cursor = 0;
  while (!stack.empty()) {
    const Pending at = stack.back();
    stack.pop_back();
    const BuildNode& src = b.nodes[at.node];
    // The node whose label and children this one takes: itself, or the
    // text fused into a param.
    const std::uint32_t text_node = fused_text(src);
    const BuildNode& below = text_node != kNil ? b.nodes[text_node] : src;
    TrieNode& dst = nodes[at.layout];
    dst.label_offset = label_cursor;
    dst.label_length = static_cast<std::uint16_t>(below.label_length);
    if (below.label_length > 0) {
      std::memcpy(labels + label_cursor, b.text.data() + below.label_offset, below.label_length);
    }
    label_cursor += below.label_length;
    first_bytes[at.layout] = src.kind == kStatic && src.label_length > 0 ? src.first_byte : 0;
    dst.first_child = next_index;
    dst.static_count = below.static_count;
    dst.wild_count = below.wild_count;
    dst.kind = src.kind;
    dst.type = src.type;
    dst.first_slot = slot_cursor;
    dst.slot_count = src.slot_count;
    // Method-specific slots first (by id), the any-method slot last, so the
    // first slot a lookup accepts is the most specific one. A node holds a
    // few slots: insertion sort in place.
    TrieSlot* const first = slots + slot_cursor;
    for (std::uint32_t x = src.first_slot; x != kNil; x = b.slots[x].next) {
      const BuildSlot& from = b.slots[x];
      const TrieSlot slot{from.handler, static_cast<std::uint32_t>(from.method) << 24 | from.names};
      TrieSlot* hole = slots + slot_cursor++;
      while (hole != first && (hole - 1)->method() > slot.method()) {
        *hole = *(hole - 1);
        --hole;
      }
      *hole = slot;
    }
    std::uint32_t length = kBelowWildcard;
    if (fill_indexes && at.before != kBelowWildcard) {
      length = at.before + src.label_length;
      path.resize(at.before);
      path.append(b.text.data() + src.label_offset, src.label_length);
      if (length <= 0xFFFF) {
        if (build_static_index && src.slot_count != 0) statics.insert(path, at.layout);
        if (build_tail_index && tail_parent(src)) tails.insert(path, at.layout);
      }
    }
    children.clear();
    for (std::uint32_t c = below.first_static; c != kNil; c = b.nodes[c].next) children.push_back(c);
    const std::size_t static_children = children.size();
    for (std::uint32_t c = below.first_wild; c != kNil; c = b.nodes[c].next) children.push_back(c);
    for (std::size_t k = children.size(); k-- > 0;) {
      stack.push_back({children[k], next_index + static_cast<std::uint32_t>(k),
                       k < static_children ? length : kBelowWildcard});
    }
    next_index += static_cast<std::uint32_t>(children.size());
  }
  for (std::size_t i = 0; i < b.names.size(); ++i) names[i] = t.arena_.copy(b.names[i]);
  for (std::size_t i = 0; i < b.predicates.size(); ++i) predicates[i] = b.predicates[i];
  for (std::size_t i = 0; i < b.custom_methods.size(); ++i) {
    customs[i] = t.arena_.copy(b.custom_methods[i]);
  }

  statics.finish();
  tails.finish();
  t.static_index_ = statics.index;
  t.tail_index_ = tails.index;
  t.static_only_ =
      t.static_index_.entries != nullptr && all_static && statics.count == static_endpoints;

  t.nodes_ = nodes;
  t.first_bytes_ = first_bytes;
  t.labels_ = labels;
  t.slots_ = slots;
  t.names_ = names;
  t.predicates_ = predicates;
  t.custom_methods_ = customs;
  t.node_count_ = static_cast<std::uint32_t>(node_count);
  t.slot_count_ = static_cast<std::uint32_t>(slot_total);
  t.custom_method_count_ = static_cast<std::uint32_t>(b.custom_methods.size());
  t.type_count_ = static_cast<std::uint32_t>(b.predicates.size());
  t.route_count_ = static_cast<std::uint32_t>(b.route_count);
  return t;
}

// ---- lookup -----------------------------------------------------------------

struct TrieAccess {
  static void set_params(Params& params, const std::string_view* names, std::size_t count) {
    params.names_ = names;
    params.size_ = count;
  }
  static std::string_view* values(Params& params) { return params.values_.data(); }
};

// Checks the endpoint at `node` for `method`. On a hit fills the result and
// params; on a miss adds the node's methods to the allowed set.
inline bool FrozenTrie::endpoint(const TrieNode& node, MethodId method, Params& params,
                                 std::size_t depth, TrieResult& result) const noexcept {
  const TrieSlot* slot = slots_ + node.first_slot;
  const TrieSlot* end = slot + node.slot_count;
  for (; slot != end; ++slot) {
    const MethodId m = slot->method();
    if (m == method || m == kAnyMethod) {
      result.handler = slot->handler;
      result.status = MatchStatus::kFound;
      TrieAccess::set_params(params, names_ + slot->names(), depth);
      return true;
    }
    result.allowed.insert_id(m);
  }
  return false;
}

namespace {

// Labels are short; comparing 8 bytes at a time inline beats calling memcmp.
inline bool same_bytes(const char* a, const char* b, std::size_t n) noexcept {
  while (n >= 8) {
    std::uint64_t x;
    std::uint64_t y;
    std::memcpy(&x, a, 8);
    std::memcpy(&y, b, 8);
    if (x != y) return false;
    a += 8;
    b += 8;
    n -= 8;
  }
  if (n >= 4) {
    std::uint32_t x;
    std::uint32_t y;
    std::memcpy(&x, a, 4);
    std::memcpy(&y, b, 4);
    if (x != y) return false;
    std::memcpy(&x, a + n - 4, 4);
    std::memcpy(&y, b + n - 4, 4);
    return x == y;
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (a[i] != b[i]) return false;
  }
  return true;
}

// The index of `want` among the `count` distinct bytes at `bytes`, or
// `count`. A plain scan: fan-out is bounded by the distinct first bytes
// (rarely more than a few dozen), and the index then comes from the loop
// counter, which the CPU predicts and runs ahead with. It beat a
// branch-free binary search and a word-at-a-time compare on the GitHub table
// (bench/README.md): both make the index wait for the loads.
inline std::uint32_t find_first_byte(const unsigned char* bytes, std::uint32_t count,
                                     unsigned char want) noexcept {
  for (std::uint32_t i = 0; i < count; ++i) {
    if (bytes[i] == want) return i;
  }
  return count;
}

// Word-at-a-time byte search (SWAR). Little-endian only: the lowest address
// is the lowest byte, so countr_zero finds the first match.
// (zero_bytes, load64: portico/detail/swar.hpp.)
constexpr bool kSwar = std::endian::native == std::endian::little;

// Where the segment starting at `pos` ends: the next '/' at or after `pos`,
// or `size`. Reads only data[0, size).
inline std::size_t segment_end(const char* data, std::size_t pos, std::size_t size) noexcept {
  if constexpr (kSwar) {
    constexpr std::uint64_t kSlashes = kOnes * '/';
    while (size - pos >= 8) {
      const std::uint64_t hit = zero_bytes(load64(data + pos) ^ kSlashes);
      if (hit != 0) return pos + static_cast<std::size_t>(std::countr_zero(hit) >> 3);
      pos += 8;
    }
    if (pos == size) return size;
    if (size >= 8) {
      // The path's last 8 bytes, with the ones before `pos` shifted out.
      const auto skip = static_cast<unsigned>(8 - (size - pos));
      const std::uint64_t hit = zero_bytes(load64(data + size - 8) ^ kSlashes) >> (8 * skip);
      return hit != 0 ? pos + static_cast<std::size_t>(std::countr_zero(hit) >> 3) : size;
    }
  }
  while (pos < size && data[pos] != '/') ++pos;
  return pos;
}

// Where the last segment starts: one past the last '/', or 0 without one.
inline std::size_t after_last_slash(const char* data, std::size_t size) noexcept {
  std::size_t end = size;
  if constexpr (kSwar) {
    constexpr std::uint64_t kSlashes = kOnes * '/';
    while (end >= 8) {
      const std::uint64_t hit = zero_bytes(load64(data + end - 8) ^ kSlashes);
      if (hit != 0) return end - static_cast<std::size_t>(std::countl_zero(hit) >> 3);
      end -= 8;
    }
  }
  while (end > 0 && data[end - 1] != '/') --end;
  return end;
}

struct Frame {
  std::uint32_t node;
  std::uint32_t position;
  std::uint32_t next_wild;
  std::uint32_t depth;
};
}  // namespace

bool FrozenTrie::walk(MethodId method, std::string_view path, Params& params,
                      TrieResult& result) const noexcept {
  // The root has an empty label and, every pattern starting with '/', at
  // most one child: node 1, whose label starts with '/'. Start there.
  if (node_count_ < 2) return false;
  const char* data = path.data();
  const std::size_t size = path.size();
  {
    const TrieNode& first = nodes_[1];
    if (size < first.label_length || !same_bytes(labels_ + first.label_offset, data,
                                                 first.label_length)) {
      return false;
    }
  }
  Frame stack[kMaxSegments + 2];
  std::size_t top = 0;
  std::string_view* values = TrieAccess::values(params);

  std::uint32_t n = 1;
  std::size_t pos = nodes_[1].label_length;
  std::size_t depth = 0;
  std::uint32_t wild = 0;  // first wildcard child still to try at n
  for (;;) {
    const TrieNode& node = nodes_[n];
    if (wild == 0) {
      // Entering n: its label is consumed up to pos.
      if (pos == size) {
        if (node.slot_count != 0 && endpoint(node, method, params, depth, result)) return true;
        goto backtrack;
      }
      // Static children, found by their first byte.
      if (node.static_count != 0) {
        const auto want = static_cast<unsigned char>(data[pos]);
        const std::uint32_t count = node.static_count;
        const std::uint32_t hit = find_first_byte(first_bytes_ + node.first_child, count, want);
        if (hit != count) {
          const std::uint32_t c = node.first_child + hit;
          const TrieNode& child = nodes_[c];
          // The first byte is known to match.
          if (size - pos >= child.label_length &&
              same_bytes(labels_ + child.label_offset + 1, data + pos + 1,
                         child.label_length - 1u)) {
            if (node.wild_count != 0) {
              stack[top++] = {n, static_cast<std::uint32_t>(pos), 1,
                              static_cast<std::uint32_t>(depth)};
            }
            n = c;
            pos += child.label_length;
            continue;
          }
        }
      }
      if (node.wild_count == 0) goto backtrack;
      wild = 1;
    }
    // Wildcard children, in priority order; `wild` is 1-based.
    {
      const std::uint32_t base = node.first_child + node.static_count;
      bool descended = false;
      while (wild <= node.wild_count) {
        const std::uint32_t c = base + wild - 1;
        const TrieNode& child = nodes_[c];
        ++wild;
        if (child.kind == kParam) {
          const std::size_t end = segment_end(data, pos, size);
          if (end == pos) continue;
          const std::string_view segment(data + pos, end - pos);
          if (child.type != kUntyped && !predicates_[child.type](segment)) continue;
          std::size_t next = end;
          if (child.label_length != 0 && end != size) {
            // A fused param: its text follows the segment (its '/' is
            // data[end]). The text has no routes of its own, so the path
            // must go on past it.
            if (size - end <= child.label_length ||
                !same_bytes(labels_ + child.label_offset + 1, data + end + 1,
                            child.label_length - 1u)) {
              continue;
            }
            next = end + child.label_length;
          }
          if (wild <= node.wild_count) {
            stack[top++] = {n, static_cast<std::uint32_t>(pos), wild,
                            static_cast<std::uint32_t>(depth)};
          }
          values[depth++] = segment;
          n = c;
          pos = next;
          descended = true;
          break;
        }
        // Catch-all: the non-empty rest of the path (pos < size here).
        values[depth] = std::string_view(data + pos, size - pos);
        if (endpoint(child, method, params, depth + 1, result)) return true;
      }
      if (descended) {
        wild = 0;
        continue;
      }
    }
  backtrack:
    if (top == 0) return false;
    --top;
    n = stack[top].node;
    pos = stack[top].position;
    wild = stack[top].next_wild;
    depth = stack[top].depth;
  }
}

inline std::uint32_t PathIndex::find(std::string_view path) const noexcept {
  std::uint32_t slot = static_cast<std::uint32_t>(hash_path(path.data(), path.size())) & mask;
  for (;;) {
    const std::uint32_t node = entries[slot * 2];
    if (node == 0) return 0;
    const char* entry = paths + entries[slot * 2 + 1];
    std::uint16_t length;
    std::memcpy(&length, entry, 2);
    if (length == path.size() && same_bytes(entry + 2, path.data(), length)) return node;
    slot = (slot + 1) & mask;
  }
}

// The common REST shape, `/users/:id`, without a walk: the path up to its
// last '/' names, through tail_index_, the node whose only wildcard child is
// a plain parameter with routes, and the rest of the path is that parameter.
// Taken only where the walk would reach the same endpoint first: the node is
// reached through static text alone (so the walk explores it before any
// wildcard above it), none of its static children starts with the
// segment's first byte, and the parameter has the method. Otherwise the walk
// decides.
inline bool FrozenTrie::find_tail(MethodId method, std::string_view path, Params& params,
                                  TrieResult& result) const noexcept {
  if (!tail_index_.may_hold_key(second_byte(path))) return false;  // before any scanning
  const char* data = path.data();
  const std::size_t size = path.size();
  const std::size_t rest = after_last_slash(data, size);
  if (rest == 0 || rest == size || !tail_index_.may_hold_length(rest)) return false;
  const std::uint32_t hit = tail_index_.find(std::string_view(data, rest));
  if (hit == 0) return false;
  const TrieNode& parent = nodes_[hit - 1];
  const std::uint32_t count = parent.static_count;
  if (find_first_byte(first_bytes_ + parent.first_child, count,
                      static_cast<unsigned char>(data[rest])) != count) {
    return false;
  }
  TrieAccess::values(params)[0] = std::string_view(data + rest, size - rest);
  // On a miss the walk visits this endpoint again: what it added to the
  // allowed set is added again, so nothing needs undoing.
  return endpoint(nodes_[parent.first_child + count], method, params, 1, result);
}

bool FrozenTrie::find(MethodId method, std::string_view path, Params& params,
                      TrieResult& result) const noexcept {
  // A fully static route for this path is the highest-priority match there
  // is: it wins outright when it has the method. Otherwise the walk decides
  // (other routes may still match, and 405 needs all of them) -- unless
  // there are no wildcards at all, when no other route can match.
  if (static_index_.entries != nullptr) {
    const std::uint32_t node =
        static_index_.may_hold_length(path.size()) && static_index_.may_hold_key(last_byte(path))
            ? static_index_.find(path)
            : 0;
    if (node != 0) {
      if (endpoint(nodes_[node - 1], method, params, 0, result)) return true;
      if (static_only_) return false;
      result.allowed = MethodSet{};
    } else if (static_only_) {
      return false;
    }
  }
  if (tail_index_.entries != nullptr && find_tail(method, path, params, result)) return true;
  return walk(method, path, params, result);
}

TrieResult FrozenTrie::lookup(MethodId method, std::string_view path,
                              Params& params) const noexcept {
  TrieResult result{0, MatchStatus::kNotFound, false, MethodSet{}};
  if (find(method, path, params, result)) {
    result.allowed = MethodSet{};
    return result;
  }
  TrieAccess::set_params(params, nullptr, 0);
  result.status = result.allowed.empty() ? MatchStatus::kNotFound : MatchStatus::kMethodNotAllowed;
  // Trailing-slash recommendation: would the path with its trailing slash
  // dropped (or one added) be found? The added form is built in a stack
  // buffer so the lookup stays allocation-free; very long paths skip it.
  Params scratch;
  TrieResult probe{0, MatchStatus::kNotFound, false, MethodSet{}};
  if (path.size() > 1 && path.back() == '/') {
    result.redirect_trailing_slash = find(method, path.substr(0, path.size() - 1), scratch, probe);
  } else if (!path.empty()) {
    char buffer[1024];
    if (path.size() < sizeof buffer) {
      std::memcpy(buffer, path.data(), path.size());
      buffer[path.size()] = '/';
      result.redirect_trailing_slash =
          find(method, std::string_view(buffer, path.size() + 1), scratch, probe);
    }
  }
  return result;
}

MethodId FrozenTrie::method_id(std::string_view token) const noexcept {
  // The standard names, by length and first byte: one compare on the hot path.
  auto is = [&](std::string_view name, Method m) -> int {
    return token == name ? static_cast<int>(m) : -1;
  };
  int standard = -1;
  switch (token.size()) {
    case 3:
      standard = token[0] == 'G' ? is("GET", Method::Get) : is("PUT", Method::Put);
      break;
    case 4:
      standard = token[0] == 'P' ? is("POST", Method::Post) : is("HEAD", Method::Head);
      break;
    case 5:
      standard = token[0] == 'P' ? is("PATCH", Method::Patch) : is("TRACE", Method::Trace);
      break;
    case 6:
      standard = is("DELETE", Method::Delete);
      break;
    case 7:
      standard = token[0] == 'O' ? is("OPTIONS", Method::Options) : is("CONNECT", Method::Connect);
      break;
    default:
      break;
  }
  if (standard >= 0) return static_cast<MethodId>(standard);
  for (std::uint32_t i = 0; i < custom_method_count_; ++i) {
    if (custom_methods_[i] == token) return static_cast<MethodId>(kStandardMethodCount + i);
  }
  return kUnknownMethod;
}

std::string_view FrozenTrie::method_name(MethodId id) const noexcept {
  if (id < kStandardMethodCount) return kMethodNames[id];
  if (id == kAnyMethod) return "ANY";
  if (id - kStandardMethodCount < custom_method_count_) {
    return custom_methods_[id - kStandardMethodCount];
  }
  return {};
}

std::string FrozenTrie::allow_header(MethodSet set, std::string_view separator) const {
  std::vector<std::string_view> list;
  for (unsigned id = 0; id < 64; ++id) {
    if (set.contains_id(id)) {
      const std::string_view name = method_name(static_cast<MethodId>(id));
      if (!name.empty()) list.push_back(name);
    }
  }
  std::sort(list.begin(), list.end());
  std::string out;
  for (std::size_t i = 0; i < list.size(); ++i) {
    if (i != 0) out.append(separator);
    out.append(list[i]);
  }
  return out;
}

MethodSet FrozenTrie::methods() const noexcept {
  MethodSet set;
  for (std::uint32_t i = 0; i < slot_count_; ++i) {
    const MethodId m = slots_[i].method();
    if (m < kMaxMethodIds) set.insert_id(m);
  }
  return set;
}

// ---- fixed-path lookup ------------------------------------------------------

namespace {

struct FixedPathSearch {
  const TrieNode* nodes;
  const char* labels;
  const TrieSlot* slots;
  const ParamPredicate* predicates;
  MethodId method;
  std::string_view path;
  bool fix_trailing_slash;
  std::string out;

  bool has_handler(const TrieNode& node) const {
    for (std::uint32_t i = 0; i < node.slot_count; ++i) {
      const MethodId m = slots[node.first_slot + i].method();
      if (m == method || m == kAnyMethod) return true;
    }
    return false;
  }

  // Node n's label has been consumed up to `pos`, its text appended to out.
  // `own` is false past the label of a fused param: the text there has no
  // routes of its own (the node's slots are the param's).
  bool search(std::uint32_t n, std::size_t pos, bool own = true) {
    const TrieNode& node = nodes[n];
    if (pos == path.size()) {
      if (own && has_handler(node)) return true;
      if (fix_trailing_slash) {
        // Add a slash: a static child "/" that is an endpoint.
        for (std::uint32_t i = 0; i < node.static_count; ++i) {
          const TrieNode& child = nodes[node.first_child + i];
          if (child.label_length == 1 && labels[child.label_offset] == '/' && has_handler(child)) {
            out.push_back('/');
            return true;
          }
        }
      }
      return false;
    }
    if (fix_trailing_slash && own && pos + 1 == path.size() && path[pos] == '/' &&
        node.kind != kCatchAll && has_handler(node) && pos > 0) {
      return true;  // drop the trailing slash
    }
    for (std::uint32_t i = 0; i < node.static_count; ++i) {
      const std::uint32_t c = node.first_child + i;
      const TrieNode& child = nodes[c];
      const char* label = labels + child.label_offset;
      const std::size_t rest = path.size() - pos;
      if (rest >= child.label_length && equal_ci(label, path.data() + pos, child.label_length)) {
        const std::size_t mark = out.size();
        out.append(label, child.label_length);
        if (search(c, pos + child.label_length)) return true;
        out.resize(mark);
      } else if (fix_trailing_slash && rest + 1 == child.label_length &&
                 label[child.label_length - 1] == '/' && equal_ci(label, path.data() + pos, rest) &&
                 has_handler(child)) {
        out.append(label, child.label_length);
        return true;
      }
    }
    for (std::uint32_t i = 0; i < node.wild_count; ++i) {
      const std::uint32_t c = node.first_child + node.static_count + i;
      const TrieNode& child = nodes[c];
      const std::size_t mark = out.size();
      if (child.kind == kParam) {
        std::size_t end = path.find('/', pos);
        if (end == std::string_view::npos) end = path.size();
        if (end == pos) continue;
        const std::string_view segment = path.substr(pos, end - pos);
        if (child.type != kUntyped && !predicates[child.type](segment)) continue;
        out.append(segment);
        if (child.label_length == 0) {
          if (search(c, end)) return true;
        } else if (end == path.size()) {
          // A fused param ends the path: its own routes only (the text
          // after it has none, so adding a slash finds nothing).
          if (has_handler(child)) return true;
        } else if (fix_trailing_slash && end + 1 == path.size() && path[end] == '/' &&
                   has_handler(child)) {
          return true;  // drop the trailing slash
        } else if (path.size() - end >= child.label_length &&
                   equal_ci(labels + child.label_offset, path.data() + end, child.label_length)) {
          // A fused param: its text follows the segment.
          out.append(labels + child.label_offset, child.label_length);
          if (search(c, end + child.label_length, false)) return true;
        }
        out.resize(mark);
      } else if (has_handler(child)) {
        out.append(path.substr(pos));
        return true;
      }
    }
    return false;
  }
};

}  // namespace

std::optional<std::string> FrozenTrie::fixed_path(MethodId method, std::string_view path,
                                                  bool fix_trailing_slash) const {
  if (nodes_ == nullptr) return std::nullopt;
  const std::string cleaned = clean_path(path);
  FixedPathSearch search{nodes_, labels_, slots_, predicates_, method, cleaned, fix_trailing_slash,
                         {}};
  search.out.reserve(cleaned.size() + 1);
  if (search.search(0, 0)) return std::move(search.out);
  return std::nullopt;
}

// ---- invariants ---------------------------------------------------------------

std::string FrozenTrie::check_invariants() const {
  if (nodes_ == nullptr) return {};
  auto bad = [](std::uint32_t n, const std::string& what) {
    return "node " + std::to_string(n) + ": " + what;
  };
  std::vector<std::uint32_t> parents(node_count_, 0xFFFFFFFFu);
  for (std::uint32_t n = 0; n < node_count_; ++n) {
    const TrieNode& node = nodes_[n];
    const std::uint32_t children = node.static_count + node.wild_count;
    if (n != 0 && children == 0 && node.slot_count == 0) return bad(n, "a leaf without a route");
    if (children != 0 && (node.first_child <= n || node.first_child + children > node_count_)) {
      return bad(n, "children out of range");
    }
    if (node.kind == kCatchAll && node.label_length != 0) return bad(n, "catch-all with a label");
    if (node.kind == kParam && node.label_length != 0) {
      // A fused param: the text after it starts a new segment, and it has
      // children (the text alone is no route).
      if (labels_[node.label_offset] != '/') return bad(n, "param text not after a '/'");
      if (children == 0) return bad(n, "fused param without children");
    }
    if (node.kind == kStatic && n != 0 && node.label_length == 0) return bad(n, "empty label");
    if (node.kind == kCatchAll && children != 0) return bad(n, "catch-all with children");
    if (node.first_slot + node.slot_count > slot_count_) return bad(n, "slots out of range");
    for (std::uint32_t i = 0; i < node.slot_count; ++i) {
      const MethodId m = slots_[node.first_slot + i].method();
      if (i > 0 && m <= slots_[node.first_slot + i - 1].method()) {
        return bad(n, "slots not strictly ordered by method");
      }
    }
    for (std::uint32_t i = 0; i < children; ++i) {
      const std::uint32_t c = node.first_child + i;
      if (parents[c] != 0xFFFFFFFFu) return bad(c, "two parents");
      parents[c] = n;
      const TrieNode& child = nodes_[c];
      if (i < node.static_count) {
        if (child.kind != kStatic) return bad(c, "wildcard among static children");
        if (first_bytes_[c] != static_cast<unsigned char>(labels_[child.label_offset])) {
          return bad(c, "first-byte index disagrees with the label");
        }
        if (i > 0 && first_bytes_[c] <= first_bytes_[c - 1]) {
          return bad(n, "static children not sorted by distinct first bytes");
        }
        if (node.kind == kParam && node.label_length == 0 && labels_[child.label_offset] != '/') {
          return bad(c, "text after a parameter does not start a new segment");
        }
      } else {
        if (child.kind == kStatic) return bad(c, "static child among wildcards");
        if (n != 0 && node.label_length != 0 &&
            labels_[node.label_offset + node.label_length - 1] != '/') {
          return bad(n, "wildcard child not at a segment start");
        }
        if (i > node.static_count) {
          const TrieNode& prev = nodes_[c - 1];
          const auto rank = [](const TrieNode& x) {
            return x.kind == kCatchAll ? 512u : (x.type == kUntyped ? 256u : x.type);
          };
          if (rank(prev) >= rank(child)) return bad(n, "wildcards out of priority order");
        }
      }
    }
  }
  for (std::uint32_t n = 1; n < node_count_; ++n) {
    if (parents[n] == 0xFFFFFFFFu) return bad(n, "unreachable");
  }
  // Each index entry: its path leads from the root to its node through
  // static labels alone; a tail entry's node also fits find_tail().
  const auto check_index = [&](const PathIndex& index, bool tail) -> std::string {
    if (index.entries == nullptr) return {};
    for (std::uint32_t slot = 0; slot <= index.mask; ++slot) {
      const std::uint32_t node = index.entries[slot * 2];
      if (node == 0) continue;
      if (node > node_count_) return "index entry past the nodes";
      std::uint16_t length;
      std::memcpy(&length, index.paths + index.entries[slot * 2 + 1], 2);
      std::string_view path(index.paths + index.entries[slot * 2 + 1] + 2, length);
      const std::string where =
          (tail ? "tail index entry " : "static index entry ") + std::string(path);
      if (!index.may_hold_length(path.size()) ||
          !index.may_hold_key(tail ? second_byte(path) : last_byte(path))) {
        return where + ": filtered out";
      }
      std::vector<std::uint32_t> chain;
      for (std::uint32_t n = node - 1; n != 0; n = parents[n]) chain.push_back(n);
      std::string text;
      for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
        const TrieNode& x = nodes_[*it];
        if (x.kind != kStatic) return where + ": reached through a wildcard";
        text.append(labels_ + x.label_offset, x.label_length);
      }
      if (text != path) return where + ": path disagrees with the labels";
      const TrieNode& x = nodes_[node - 1];
      if (!tail && x.slot_count == 0) return where + ": no routes";
      if (tail) {
        const TrieNode& param = nodes_[x.first_child + x.static_count];
        if (path.empty() || path.back() != '/' || x.wild_count != 1 || param.kind != kParam ||
            param.type != kUntyped || param.slot_count == 0) {
          return where + ": not a plain parameter's parent";
        }
      }
    }
    return {};
  };
  if (std::string error = check_index(static_index_, false); !error.empty()) return error;
  return check_index(tail_index_, true);
}

}  // namespace detail
}  // namespace v0
}  // namespace portico
