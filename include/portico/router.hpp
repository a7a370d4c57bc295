// portico/router.hpp — the standalone router: Router<H> (the builder),
// FrozenRouter<H> (an immutable path-compressed radix trie laid out in one
// arena) and PublishedRouter<H> (a Published<FrozenRouter<H>>: many readers,
// one publisher).
// Thread-safety: Router<H> belongs to one thread. A FrozenRouter<H> is
// immutable: any number of threads may look up in it at once. PublishedRouter:
// as Published<T> in portico/published.hpp.
// Lifetimes: Params values are views into the path passed to match(); Params
// names and RouteMatch::handler point into the FrozenRouter and stay valid as
// long as that table lives (for a published table: until the reader's next
// quiescent point).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "portico/arena.hpp"
#include "portico/published.hpp"

namespace portico {
inline namespace v0 {

// ---- methods ----------------------------------------------------------------

// The standard request methods. Any other token (e.g. "PURGE") can be used
// through the string_view overloads; the router gives it its own id.
enum class Method : std::uint8_t { Get, Head, Post, Put, Delete, Connect, Options, Trace, Patch };
inline constexpr std::size_t kStandardMethodCount = 9;

// "GET", "HEAD", ... for a standard method.
std::string_view method_name(Method method) noexcept;
// The standard method spelled exactly `token` (case-sensitive, as HTTP says).
std::optional<Method> parse_method(std::string_view token) noexcept;

// A small set of method ids: the standard methods occupy ids 0-8 in enum
// order, custom tokens get the ids after them in the order a router first saw
// them. FrozenRouter::allow_header() lists a set by name.
class MethodSet {
 public:
  constexpr MethodSet() noexcept = default;
  constexpr explicit MethodSet(std::uint64_t bits) noexcept : bits_(bits) {}
  constexpr bool contains(Method method) const noexcept {
    return contains_id(static_cast<unsigned>(method));
  }
  constexpr bool contains_id(unsigned id) const noexcept { return id < 64 && (bits_ >> id) & 1u; }
  constexpr void insert(Method method) noexcept { insert_id(static_cast<unsigned>(method)); }
  constexpr void insert_id(unsigned id) noexcept {
    if (id < 64) bits_ |= std::uint64_t{1} << id;
  }
  constexpr bool empty() const noexcept { return bits_ == 0; }
  constexpr std::uint64_t bits() const noexcept { return bits_; }
  friend constexpr bool operator==(MethodSet, MethodSet) noexcept = default;

 private:
  std::uint64_t bits_ = 0;
};

// ---- lookup results ---------------------------------------------------------

enum class MatchStatus : std::uint8_t {
  kFound,             // a route matches the path and the method (or is any-method)
  kMethodNotAllowed,  // routes match the path, none with this method: 405
  kNotFound,          // no route matches the path: 404
};

namespace detail {
struct TrieAccess;
struct ParamsAccess;  // the server's: re-points names at request-owned copies
}  // namespace detail

// The parameters of a match: a caller-owned, fixed-capacity array of views
// into the path, in pattern order, with the matched route's names.
// A route with more than kCapacity parameters is rejected at add().
class Params {
 public:
  static constexpr std::size_t kCapacity = 16;

  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  // The raw (still percent-encoded) value of parameter `i`.
  // REQUIRES: i < size().
  std::string_view operator[](std::size_t i) const noexcept { return values_[i]; }
  // The name of parameter `i` as the matched route spells it.
  // REQUIRES: i < size().
  std::string_view name(std::size_t i) const noexcept { return names_[i]; }
  // The raw value of the parameter called `name`, or an empty view when the
  // matched route has none (a matched value is never empty).
  std::string_view get(std::string_view name) const noexcept {
    for (std::size_t i = 0; i < size_; ++i) {
      if (names_[i] == name) return values_[i];
    }
    return {};
  }
  void clear() noexcept { size_ = 0; }

 private:
  friend struct detail::TrieAccess;
  friend struct detail::ParamsAccess;
  std::array<std::string_view, kCapacity> values_{};
  const std::string_view* names_ = nullptr;
  std::size_t size_ = 0;
};

// The outcome of FrozenRouter<H>::match().
template <class H>
struct RouteMatch {
  const H* handler = nullptr;  // set only when status == kFound
  MatchStatus status = MatchStatus::kNotFound;
  // kMethodNotAllowed: the methods of every route whose pattern matches the
  // path (for an Allow header). Empty otherwise.
  MethodSet allowed;
  // Not found (404 or 405), but the same path with its trailing slash added
  // or removed would be found with this method: a redirect is worth offering.
  bool redirect_trailing_slash = false;

  explicit operator bool() const noexcept { return handler != nullptr; }
};

// Decodes %XX escapes in a raw parameter value (a path segment: '+' stays
// '+'). Returns nullopt when a '%' is not followed by two hex digits.
std::optional<std::string> percent_decode(std::string_view raw);
// Allocation-free form: writes at most raw.size() bytes to `out` and returns
// how many, or std::string_view::npos on a malformed escape.
std::size_t percent_decode_to(std::string_view raw, char* out) noexcept;

// ---- errors -----------------------------------------------------------------

enum class RouteErrc {
  kBadSyntax = 1,       // unbalanced '{', a wildcard not spanning a whole segment, ...
  kBadMethod,           // not an HTTP token
  kEmptyParamName,      // "/:" or "{}" or "*"
  kDuplicateParamName,  // "/:id/:id"
  kCatchAllNotLast,     // "/*rest/x"
  kUnknownParamType,    // "{id:float}" with no such type registered
  kTooManyParams,       // more than Params::kCapacity
  kDuplicateRoute,      // same method and the same pattern (up to param names)
  kLimitExceeded,       // a pattern longer than 65535 bytes, too many custom methods/types
  kFrozen,              // the table takes no more routes (a server's table published
                        // with RouteRetention::kFrozenOnly)
};
const std::error_category& route_category() noexcept;
inline std::error_code make_error_code(RouteErrc e) noexcept {
  return {static_cast<int>(e), route_category()};
}

// What add() returns: empty (false) on success; otherwise the error, a
// message naming the pattern(s) and the byte position the problem is at (a
// duplicate route names the route added before instead: the whole pattern
// conflicts).
class [[nodiscard]] RouteError {
 public:
  RouteError() = default;
  RouteError(RouteErrc code, std::size_t position, std::string message)
      : code_(make_error_code(code)), position_(position), message_(std::move(message)) {}

  explicit operator bool() const noexcept { return static_cast<bool>(code_); }
  std::error_code code() const noexcept { return code_; }
  // Byte offset into the pattern being added; 0 for kDuplicateRoute.
  std::size_t position() const noexcept { return position_; }
  const std::string& message() const noexcept { return message_; }

 private:
  std::error_code code_;
  std::size_t position_ = 0;
  std::string message_;
};

// A user predicate for a typed parameter `{name:type}`: true if the segment
// (raw, non-empty) has the type. REQUIRES: it does not throw or allocate if
// lookups must not.
using ParamPredicate = bool (*)(std::string_view segment);

template <class H>
class FrozenRouter;

// ---- internals shared by the templates (compiled once in src/router/) -------

namespace detail {

using MethodId = std::uint8_t;
inline constexpr MethodId kMaxMethodIds = 62;   // ids 0..61 name methods
inline constexpr MethodId kUnknownMethod = 62;  // a token no route uses
inline constexpr MethodId kAnyMethod = 63;      // the any-method slot

// One frozen trie node, 20 bytes. A node is a static label (possibly empty
// for the root), a parameter (one whole non-empty segment) or a catch-all.
// Its children sit contiguously at [first_child, first_child + static_count
// + wild_count): static ones sorted by first byte, then the wildcards in
// priority order (typed params, param, catch-all).
struct TrieNode {
  std::uint32_t label_offset;
  std::uint32_t first_child;
  std::uint32_t first_slot;
  std::uint16_t label_length;
  std::uint16_t static_count;
  std::uint8_t wild_count;
  std::uint8_t slot_count;
  std::uint8_t kind;  // kStatic, kParam, kCatchAll
  std::uint8_t type;  // param type id, kUntyped for a plain param
};
static_assert(sizeof(TrieNode) == 20);

inline constexpr std::uint8_t kStatic = 0;
inline constexpr std::uint8_t kParam = 1;
inline constexpr std::uint8_t kCatchAll = 2;
inline constexpr std::uint8_t kUntyped = 255;

// One endpoint entry: which handler answers which method, and where the
// route's parameter names start in the interned names array.
struct TrieSlot {
  std::uint32_t handler;
  std::uint32_t method_and_names;  // method id << 24 | names offset
  MethodId method() const noexcept { return static_cast<MethodId>(method_and_names >> 24); }
  std::uint32_t names() const noexcept { return method_and_names & 0xFFFFFFu; }
};

struct TrieResult {
  std::uint32_t handler;
  MatchStatus status;
  bool redirect_trailing_slash;
  MethodSet allowed;
};

// An exact-match index from a static path to a layout node: open
// addressing, `mask + 1` entries of {node + 1, offset of the path in `paths`
// (a 2-byte length, then the bytes)}, load factor <= 1/2. Two one-word
// filters in front: bit min(length, 63) is set for the length of every path
// in it, and bit (key & 63) for its key byte, chosen by the index (the
// static index: the last byte). A path failing either skips hashing
// (`/users/123` against `/plaintext`: same length, another last byte).
struct PathIndex {
  const std::uint32_t* entries = nullptr;  // null: not built
  const char* paths = nullptr;
  std::uint64_t lengths = 0;
  std::uint64_t keys = 0;
  std::uint32_t mask = 0;

  bool may_hold_length(std::size_t length) const noexcept {
    return ((lengths >> (length < 63 ? length : 63)) & 1) != 0;
  }
  bool may_hold_key(unsigned key) const noexcept { return ((keys >> (key & 63u)) & 1) != 0; }
  // The node stored for `path`, plus one; 0 when there is none.
  std::uint32_t find(std::string_view path) const noexcept;
};

// The immutable trie. Works on handler indices; FrozenRouter<H> maps them to Hs.
class FrozenTrie {
 public:
  FrozenTrie() = default;
  FrozenTrie(FrozenTrie&&) noexcept = default;
  FrozenTrie& operator=(FrozenTrie&&) noexcept = default;

  TrieResult lookup(MethodId method, std::string_view path, Params& params) const noexcept;
  MethodId method_id(std::string_view token) const noexcept;
  std::string_view method_name(MethodId id) const noexcept;
  std::string allow_header(MethodSet set, std::string_view separator) const;
  MethodSet methods() const noexcept;
  std::optional<std::string> fixed_path(MethodId method, std::string_view path,
                                        bool fix_trailing_slash) const;
  std::size_t bytes_used() const noexcept { return arena_.bytes_used(); }
  std::size_t route_count() const noexcept { return route_count_; }

  // Structure checks for tests: returns an empty string when every
  // invariant holds, else what is wrong.
  std::string check_invariants() const;
  std::size_t node_count() const noexcept { return node_count_; }

 private:
  friend class TrieBuilder;
  friend struct TrieAccess;

  bool endpoint(const TrieNode& node, MethodId method, Params& params, std::size_t depth,
                TrieResult& result) const noexcept;
  bool walk(MethodId method, std::string_view path, Params& params,
            TrieResult& result) const noexcept;
  bool find_tail(MethodId method, std::string_view path, Params& params,
                 TrieResult& result) const noexcept;
  bool find(MethodId method, std::string_view path, Params& params,
            TrieResult& result) const noexcept;

  Arena arena_{0};
  const TrieNode* nodes_ = nullptr;
  const unsigned char* first_bytes_ = nullptr;  // first label byte per node
  const char* labels_ = nullptr;
  const TrieSlot* slots_ = nullptr;
  const std::string_view* names_ = nullptr;
  const ParamPredicate* predicates_ = nullptr;  // by type id
  const std::string_view* custom_methods_ = nullptr;
  // Exact-match index of fully static routes (see freeze()).
  PathIndex static_index_;
  // Routes ending in a plain parameter after static text (`/users/:id`):
  // the text up to the parameter ("/users/") -> the node it hangs from.
  PathIndex tail_index_;
  // No wildcard anywhere: the static index alone decides every lookup.
  bool static_only_ = false;
  std::uint32_t node_count_ = 0;
  std::uint32_t slot_count_ = 0;
  std::uint32_t custom_method_count_ = 0;
  std::uint32_t type_count_ = 0;
  std::uint32_t route_count_ = 0;
};

// The mutable trie behind Router<H>. Heavy and non-template.
class TrieBuilder {
 public:
  TrieBuilder();
  ~TrieBuilder();
  TrieBuilder(TrieBuilder&&) noexcept;
  TrieBuilder& operator=(TrieBuilder&&) noexcept;

  // Resolves a method token, registering a custom one. kUnknownMethod and
  // an error on a bad token or when the ids run out.
  MethodId intern_method(std::string_view token, RouteError& error);
  RouteError add(MethodId method, std::string_view method_text, std::string_view pattern,
                 std::uint32_t handler);
  RouteError add_param_type(std::string_view name, ParamPredicate predicate);
  std::size_t route_count() const noexcept;
  void reserve(std::size_t routes, std::size_t pattern_bytes);
  void shrink_to_fit();
  FrozenTrie freeze() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace detail

// ---- the builder ------------------------------------------------------------

// Collects routes, then freeze() lays them out as a FrozenRouter<H>.
//
// Pattern syntax: static text; `:name` or `{name}` for one whole non-empty
// segment; `*name` or `{*name}` for a non-empty rest of the path (last
// segment only); `{name:type}` for a typed segment, type one of int
// (digits), uuid (8-4-4-4-12 hex), hex, alpha or a type registered with
// add_param_type(). At one position the trie tries static text first, then
// typed params (built-in types, then registered ones, in that order), then
// the plain param, then the catch-all, backtracking when a branch dead-ends.
template <class H>
class Router {
 public:
  Router() = default;

  // Adds `pattern` for a standard method.
  RouteError add(Method method, std::string_view pattern, H handler);
  // Adds `pattern` for a method token: a standard name ("GET") or any other
  // HTTP token ("PURGE"). "*" or "ANY" is not special here; use add_any().
  RouteError add(std::string_view method_token, std::string_view pattern, H handler);
  // Adds `pattern` for every method. A method-specific route on the same
  // pattern wins over it.
  RouteError add_any(std::string_view pattern, H handler);
  // Registers a typed-parameter type usable as `{name:type_name}` in
  // patterns added after this call.
  RouteError add_param_type(std::string_view type_name, ParamPredicate predicate) {
    return trie_.add_param_type(type_name, predicate);
  }

  std::size_t size() const noexcept { return handlers_.size(); }

  // Preallocates for about `routes` more routes whose patterns total about
  // `pattern_bytes`, so a large table builds without regrowing its vectors.
  // On Linux blocks of 1 MiB and more are mapped with their pages present
  // (huge pages where allowed), and the handlers' storage from 64 KiB has
  // its pages made present: reserved memory is committed at once, not on
  // first use.
  void reserve(std::size_t routes, std::size_t pattern_bytes = 0) {
    trie_.reserve(routes, pattern_bytes);
    handlers_.reserve(handlers_.size() + routes);
    // The handlers are written next: their pages present at once.
    detail::populate(handlers_.data() + handlers_.size(),
                     (handlers_.capacity() - handlers_.size()) * sizeof(H));
  }

  // Gives back spare capacity: for a builder kept beside its frozen table
  // (a server keeps its routes for routes added later). Adding more after
  // it regrows as usual.
  void shrink_to_fit() {
    trie_.shrink_to_fit();
    handlers_.shrink_to_fit();
  }

  // The frozen table. The builder stays usable (the copying form) or is
  // consumed (the moving form).
  FrozenRouter<H> freeze() const&;
  FrozenRouter<H> freeze() &&;

 private:
  RouteError add_with_id(detail::MethodId id, std::string_view method_text,
                         std::string_view pattern, H&& handler);
  detail::TrieBuilder trie_;
  std::vector<H> handlers_;
};

// ---- the frozen table -------------------------------------------------------

// An immutable route table. Lookups allocate nothing, take no lock and
// touch no shared mutable memory.
template <class H>
class FrozenRouter {
 public:
  FrozenRouter() = default;

  // Finds the route for `method` and the raw `path` (no query string: strip
  // "?..." first). Fills `params` on kFound.
  RouteMatch<H> match(Method method, std::string_view path, Params& params) const noexcept {
    return to_match(trie_.lookup(static_cast<detail::MethodId>(method), path, params));
  }
  RouteMatch<H> match(std::string_view method_token, std::string_view path,
                      Params& params) const noexcept {
    return to_match(trie_.lookup(trie_.method_id(method_token), path, params));
  }
  // The handler alone, or null (404 and 405 alike).
  const H* find(Method method, std::string_view path, Params& params) const noexcept {
    return match(method, path, params).handler;
  }

  // httprouter's fixed-path lookup: cleans `path` ("//", "/./", "/../"),
  // matches static text case-insensitively and, when `fix_trailing_slash`,
  // adds or drops a trailing slash. Returns the corrected path (route case
  // for static text, the request's bytes for params) when a route for
  // `method` (or any-method) exists there, else nullopt. For redirects only:
  // it allocates.
  std::optional<std::string> fixed_path(Method method, std::string_view path,
                                        bool fix_trailing_slash = true) const {
    return trie_.fixed_path(static_cast<detail::MethodId>(method), path, fix_trailing_slash);
  }
  std::optional<std::string> fixed_path(std::string_view method_token, std::string_view path,
                                        bool fix_trailing_slash = true) const {
    return trie_.fixed_path(trie_.method_id(method_token), path, fix_trailing_slash);
  }

  // The names of the methods in `set`, sorted, joined by `separator` (an
  // Allow header value). Allocates.
  std::string allow_header(MethodSet set, std::string_view separator = ", ") const {
    return trie_.allow_header(set, separator);
  }
  // The methods some route of the table answers (any-method routes add
  // none of their own): what `OPTIONS *` lists.
  MethodSet methods() const noexcept { return trie_.methods(); }

  std::size_t route_count() const noexcept { return trie_.route_count(); }
  // Bytes the table holds: its arena (nodes, labels, slots, names) plus the
  // storage of its handlers.
  std::size_t memory_bytes() const noexcept {
    return trie_.bytes_used() + handlers_.capacity() * sizeof(H) + sizeof(*this);
  }
  const detail::FrozenTrie& trie() const noexcept { return trie_; }

 private:
  friend class Router<H>;
  FrozenRouter(detail::FrozenTrie trie, std::vector<H> handlers)
      : trie_(std::move(trie)), handlers_(std::move(handlers)) {}

  RouteMatch<H> to_match(const detail::TrieResult& r) const noexcept {
    RouteMatch<H> out;
    out.status = r.status;
    out.allowed = r.allowed;
    out.redirect_trailing_slash = r.redirect_trailing_slash;
    if (r.status == MatchStatus::kFound) out.handler = handlers_.data() + r.handler;
    return out;
  }

  detail::FrozenTrie trie_;
  std::vector<H> handlers_;
};

// ---- publishing -------------------------------------------------------------

// A route table that can be replaced while other threads look up in it:
// Published<FrozenRouter<H>> (see portico/published.hpp for the reader and
// publisher rules) whose readers call the snapshot table().
template <class H>
class PublishedRouter : public Published<FrozenRouter<H>> {
  using Base = Published<FrozenRouter<H>>;

 public:
  using Base::Base;

  class Reader : public Base::Reader {
   public:
    // The current table. The reference stays valid until this reader's next
    // quiescent() or offline(). REQUIRES: the reader is online.
    const FrozenRouter<H>& table() const noexcept { return this->snapshot(); }

   private:
    friend class PublishedRouter;
    explicit Reader(typename Base::Reader&& reader) noexcept : Base::Reader(std::move(reader)) {}
  };

  // A new online reader, or nullopt when max_readers are registered.
  // Thread-safe.
  std::optional<Reader> register_reader() noexcept {
    std::optional<typename Base::Reader> reader = Base::register_reader();
    if (!reader) return std::nullopt;
    return Reader(std::move(*reader));
  }
};

// ---- Router<H> implementation -----------------------------------------------

template <class H>
RouteError Router<H>::add_with_id(detail::MethodId id, std::string_view method_text,
                                  std::string_view pattern, H&& handler) {
  RouteError error =
      trie_.add(id, method_text, pattern, static_cast<std::uint32_t>(handlers_.size()));
  if (!error) handlers_.push_back(std::move(handler));
  return error;
}

template <class H>
RouteError Router<H>::add(Method method, std::string_view pattern, H handler) {
  return add_with_id(static_cast<detail::MethodId>(method), method_name(method), pattern,
                     std::move(handler));
}

template <class H>
RouteError Router<H>::add(std::string_view method_token, std::string_view pattern, H handler) {
  RouteError error;
  const detail::MethodId id = trie_.intern_method(method_token, error);
  if (error) return error;
  return add_with_id(id, method_token, pattern, std::move(handler));
}

template <class H>
RouteError Router<H>::add_any(std::string_view pattern, H handler) {
  return add_with_id(detail::kAnyMethod, "ANY", pattern, std::move(handler));
}

template <class H>
FrozenRouter<H> Router<H>::freeze() const& {
  return FrozenRouter<H>(trie_.freeze(), std::vector<H>(handlers_.begin(), handlers_.end()));
}

template <class H>
FrozenRouter<H> Router<H>::freeze() && {
  detail::FrozenTrie trie = trie_.freeze();
  handlers_.shrink_to_fit();
  return FrozenRouter<H>(std::move(trie), std::move(handlers_));
}

}  // namespace v0
}  // namespace portico

template <>
struct std::is_error_code_enum<portico::RouteErrc> : std::true_type {};
