// portico/http.hpp — what a handler sees: Request (views into the pooled read
// buffer), Response (built in request-scoped storage, then serialised into
// the reactor's output buffer and sent with one send per read batch, batched
// through io_uring where available) and Completion (finishes a deferred
// response from any thread).
// Thread-safety: a Request/Response pair belongs to the reactor thread that
// parsed it while its handler runs; after Response::defer() it belongs to
// whoever holds the Completion until Completion::done(), then to the reactor
// again. Never share one pair between threads at once.
// Lifetimes: every string_view a Request hands out (method, target, path,
// query, headers, body, params) stays valid until the response is complete:
// the handler's return, or for a deferred response, Completion::done(). Copy
// what must live longer.
#pragma once

#include <fmt/format.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "portico/detail/unique_function.hpp"
#include "portico/router.hpp"

namespace portico {
inline namespace v0 {

namespace detail {
class ServerConnection;
struct ServerExchange;
class ServerCore;
struct ReactorShard;
struct LocalReplies;
}  // namespace detail

// One header field, as received (raw name and value; value without the
// surrounding whitespace).
struct Header {
  std::string_view name;
  std::string_view value;
};

// ASCII case-insensitive equality, as HTTP field names compare.
bool iequals(std::string_view a, std::string_view b) noexcept;

// An HTTP request being served.
class Request {
 public:
  // The method as sent ("GET", "PURGE", ...) and, for the standard ones, as
  // an enum (nullopt for a custom token).
  std::string_view method_name() const noexcept { return method_name_; }
  std::optional<Method> method() const noexcept { return method_; }
  // The raw request-target, its path (before '?') and query (after '?',
  // without it; empty when there is none). All still percent-encoded.
  std::string_view target() const noexcept { return target_; }
  std::string_view path() const noexcept { return path_; }
  std::string_view query() const noexcept { return query_; }
  // The raw value of the first `name=value` pair of the query whose name
  // equals `name` (exact, still encoded); "" for a bare `name`; nullopt if
  // absent.
  std::optional<std::string_view> query_param(std::string_view name) const noexcept;

  // HTTP/1.x: minor version 0 or 1.
  int version_minor() const noexcept { return version_minor_; }
  // Whether the connection stays open after this exchange (HTTP/1.1 without
  // `Connection: close`, or HTTP/1.0 with `Connection: keep-alive`).
  bool keep_alive() const noexcept { return keep_alive_; }

  // The first header named `name` (case-insensitive), or nullopt.
  std::optional<std::string_view> header(std::string_view name) const noexcept;
  // Every header in the order received (repeated names are separate entries).
  std::span<const Header> headers() const noexcept { return {headers_.data(), header_count_}; }

  // The whole body, de-chunked. Empty when there is none.
  std::string_view body() const noexcept { return body_; }

  // A route parameter's raw (percent-encoded) value, or "" when the route has
  // no parameter of that name. percent_decode() (router.hpp) decodes it.
  std::string_view param(std::string_view name) const noexcept {
    return params_.get(name);
  }
  const Params& params() const noexcept { return params_; }

  // The peer's address as text ("127.0.0.1:54321"; "[::1]:54321").
  std::string_view remote_address() const noexcept;

 private:
  friend class detail::ServerConnection;
  friend struct detail::ServerExchange;
  friend class detail::ServerCore;
  friend struct detail::ReactorShard;

  std::string_view method_name_;
  std::optional<Method> method_;
  std::string_view target_, path_, query_, body_;
  Params params_;
  const detail::ServerConnection* connection_ = nullptr;
  mutable char remote_text_[64] = {};  // formatted on first use per request
  mutable std::uint8_t remote_length_ = 0;
  std::vector<Header> headers_;  // capacity kept across requests (pooled)
  std::size_t header_count_ = 0;
  int version_minor_ = 1;
  bool keep_alive_ = true;
};

class Completion;

// The response a handler fills. Unless a handler sets a status, it is 200;
// Date, Server, Content-Length and Connection are added when it is written.
// Content-Length and Transfer-Encoding set by hand are ignored: the server
// frames the body itself.
class Response {
 public:
  Response& status(int code) noexcept {
    status_ = code;
    return *this;
  }
  int status() const noexcept { return status_; }

  // Adds a header (name and value are copied). REQUIRES: neither contains CR
  // or LF (such headers are dropped, never written).
  Response& header(std::string_view name, std::string_view value);
  // Sets the Content-Type header (replacing an earlier one).
  Response& content_type(std::string_view type);

  // Replaces the body with `bytes` (copied) and sets a Content-Type.
  Response& text(std::string_view bytes) { return body(bytes, "text/plain"); }
  Response& json(std::string_view bytes) { return body(bytes, "application/json"); }
  Response& html(std::string_view bytes) { return body(bytes, "text/html; charset=utf-8"); }
  Response& body(std::string_view bytes, std::string_view content_type = {});
  // Takes the string without copying it.
  Response& body(std::string&& bytes, std::string_view content_type = {});
  // Appends to the body.
  Response& append(std::string_view bytes) {
    body_.append(bytes);
    return *this;
  }
  // Appends fmt-formatted text to the body; allocates nothing once the
  // request-scoped storage has grown to fit.
  template <class... T>
  Response& format(fmt::format_string<T...> fmt_string, T&&... args) {
    // Formatted on the stack first: fmt writes a memory_buffer in bulk, a
    // std::string one push_back at a time.
    fmt::memory_buffer formatted;
    fmt::format_to(fmt::appender(formatted), fmt_string, std::forward<T>(args)...);
    body_.append(formatted.data(), formatted.size());
    return *this;
  }
  std::string_view body() const noexcept { return body_; }

  // Marks the response as finished later: the server writes nothing until the
  // returned Completion's done() runs (from any thread). The Request and this
  // Response stay valid until then. REQUIRES: called once, from the handler.
  Completion defer() noexcept;
  bool deferred() const noexcept { return deferred_; }

  // The body comes from `source`, a piece at a time, as the client takes
  // it: once the handler returned (for a deferred response, once done()
  // ran), the reactor calls source(out) to append the next piece to `out`;
  // it returns false with the last piece. Pieces under 16 KiB are gathered
  // (`out` then holds the ones before, unsent) into one write; the calls
  // after a write come only once the socket has taken it, so a body of any
  // size is never held whole (a metrics scrape, an export). Sent
  // chunked (to an HTTP/1.0 client: close-delimited), or with
  // Content-Length when the first call is also the last. Not called for
  // HEAD, nor for a status without a body (1xx, 204, 304). Runs on the
  // reactor thread: a piece should be quick to make (tens of KiB). A throw
  // before the first piece is sent answers 500; after it, the connection
  // closes with the body cut (no last chunk). Replaces the body set so far.
  // REQUIRES: a call that returns true appends something (or the reactor
  // spins); no Completion::write() for this response.
  using BodySource = detail::UniqueFunction<bool(std::string& out)>;
  Response& body_source(BodySource source, std::string_view content_type = {});

  // Sends the body with Transfer-Encoding: chunked instead of Content-Length
  // (to an HTTP/1.0 client: unframed, then the connection closes). Implied by
  // Completion::write().
  Response& chunked() noexcept {
    chunked_ = true;
    return *this;
  }

  // Asks for the connection to close after this response.
  Response& close_connection() noexcept {
    close_ = true;
    return *this;
  }

 private:
  friend class detail::ServerConnection;
  friend struct detail::ServerExchange;
  friend class detail::ServerCore;
  friend struct detail::LocalReplies;
  friend struct detail::ReactorShard;
  friend class Completion;

  void reset() noexcept;
  std::string_view content_type_value() const noexcept {
    return static_type_.empty() ? std::string_view(content_type_) : static_type_;
  }

  int status_ = 200;
  bool deferred_ = false;
  bool close_ = false;
  bool chunked_ = false;
  std::string fields_;  // "Name: value\r\n" lines, ready to write
  // The Content-Type: one of the common types content_type() knows (a view
  // of its literal), or else a checked copy.
  std::string_view static_type_;
  std::string content_type_;
  std::string body_;
  BodySource source_;  // body_source(): the body still to come
  detail::ServerExchange* exchange_ = nullptr;
};

// The handle that finishes a deferred response. Move-only. done() hands the
// response back to its reactor (through its task queue) to be written; call
// it exactly once. Dropping a Completion without calling done() finishes the
// response as 500 Internal Server Error, so no request hangs.
class Completion {
 public:
  Completion() noexcept = default;
  Completion(Completion&& other) noexcept : exchange_(std::exchange(other.exchange_, nullptr)) {}
  Completion& operator=(Completion&& other) noexcept {
    if (this != &other) {
      abandon();
      exchange_ = std::exchange(other.exchange_, nullptr);
    }
    return *this;
  }
  Completion(const Completion&) = delete;
  Completion& operator=(const Completion&) = delete;
  ~Completion() { abandon(); }

  explicit operator bool() const noexcept { return exchange_ != nullptr; }
  // Streams `bytes` now as one chunk of a chunked response: the first call
  // sends the status and headers as they stand (after the middleware's
  // `after`s), later ones only chunks; done() sends the rest of body() and
  // the last chunk. Any thread; copies `bytes`. Calls from one thread keep
  // their order. REQUIRES: *this is not empty; the status and headers are not
  // changed after the first write().
  void write(std::string_view bytes);
  // Sends the response. REQUIRES: *this is not empty; the Response is no
  // longer touched by the caller afterwards.
  void done() noexcept;

 private:
  friend class Response;
  explicit Completion(detail::ServerExchange* exchange) noexcept : exchange_(exchange) {}
  void abandon() noexcept;
  detail::ServerExchange* exchange_ = nullptr;
};

// The reason phrase for a status code ("Not Found"); "Unknown" for others.
std::string_view reason_phrase(int status) noexcept;

}  // namespace v0
}  // namespace portico
