// The HTTP/1.1 server: listeners, connections, the llhttp glue, routing,
// middleware, deferred and offloaded handlers, timeouts and shutdown.
//
// Shape of one connection (all on its reactor's thread):
//   read into a pooled block -> llhttp (paused at each message end) ->
//   route + middleware + handler -> serialise into the reactor's output
//   scratch -> after the whole read batch, one write for every response.
// Views a Request hands out are offsets into the connection's input buffer,
// turned into string_views at dispatch; the buffer is not touched (no
// compaction, no consume) until the response is complete.
#include "portico/server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "portico/buffer_pool.hpp"
#include "portico/detail/syscalls.hpp"
#include "portico/mpmc_queue.hpp"
#include "portico/reactor.hpp"
#include "http1/parser.hpp"
#include "http1/writer.hpp"
#include "io_batch.hpp"

#if defined(PORTICO_HAVE_MIMALLOC)
#include <mimalloc.h>
#endif

using namespace std::string_view_literals;  // literals appended with their length known

namespace portico {
inline namespace v0 {
namespace detail {

namespace {

// Relaxed single-writer counters: the owning reactor bumps, anyone reads.
inline void bump(std::atomic<std::uint64_t>& counter, std::uint64_t by = 1) noexcept {
  counter.store(counter.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
}

constexpr std::size_t kBigBody = 64 * 1024;  // bodies above this are written, not copied
constexpr int kMaxReadsPerEvent = 4;         // fairness between connections
// Connections are edge-triggered: a level-triggered fd that was reported is
// put back on epoll's ready list and polled again at the next epoll_wait,
// once per request. A short read means the socket was drained, so one read
// per request still suffices; where a connection stops short of that it
// re-arms (see read_input and start_linger).
constexpr std::uint32_t kConnectionTrigger = EPOLLET;
constexpr std::chrono::milliseconds kLingerTimeout{2000};
constexpr std::chrono::milliseconds kAcceptRetry{100};
constexpr std::size_t kExchangeReserve = 256;  // pooled exchanges kept per reactor
constexpr unsigned kIoBatchDepth = 256;         // reads (and sends) queued per iteration, at most

}  // namespace

// Milliseconds of a reactor's clock in 32 bits (wrapping every 49 days),
// compared by signed difference.
using Ticks = std::uint32_t;
inline Ticks to_ticks(std::chrono::steady_clock::time_point t) noexcept {
  return static_cast<Ticks>(
      std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count());
}
inline bool ticks_before(Ticks a, Ticks b) noexcept { return static_cast<std::int32_t>(a - b) < 0; }

// ---- routes -------------------------------------------------------------------

struct RouteEntry {
  mutable Handler handler;
  bool blocking = false;
  mutable std::vector<Middleware> middleware;

  // The route's parameter names as `matched` (a match of this route) has
  // them, in storage of the route's own: a request's params are re-pointed
  // here so they never point into a route table, which a reactor may let go
  // of while a deferred request is still out. Filled at the first match.
  const std::string_view* param_names(const Params& matched) const;

 private:
  struct Names {
    std::string bytes;
    std::vector<std::string_view> views;
  };
  mutable std::atomic<const std::string_view*> names_{nullptr};
  mutable std::unique_ptr<Names> names_storage_;  // written once, under a lock
};

const std::string_view* RouteEntry::param_names(const Params& matched) const {
  if (const std::string_view* names = names_.load(std::memory_order_acquire)) return names;
  static std::mutex mutex;  // first matches only
  std::lock_guard lock(mutex);
  if (const std::string_view* names = names_.load(std::memory_order_relaxed)) return names;
  auto storage = std::make_unique<Names>();
  for (std::size_t i = 0; i < matched.size(); ++i) storage->bytes.append(matched.name(i));
  std::size_t at = 0;
  for (std::size_t i = 0; i < matched.size(); ++i) {
    const std::size_t length = matched.name(i).size();
    storage->views.push_back(std::string_view(storage->bytes).substr(at, length));
    at += length;
  }
  names_storage_ = std::move(storage);
  names_.store(names_storage_->views.data(), std::memory_order_release);
  return names_storage_->views.data();
}
using RouteRef = std::shared_ptr<RouteEntry>;
using RouteTable = PublishedRouter<RouteRef>;

}  // namespace detail

struct Routes::Impl {
  Router<detail::RouteRef> router;
  std::size_t count = 0;
};

Routes::Routes() : impl_(std::make_unique<Impl>()) {}
Routes::~Routes() = default;
Routes::Routes(Routes&&) noexcept = default;
Routes& Routes::operator=(Routes&&) noexcept = default;

namespace {
detail::RouteRef make_entry(Handler handler, RouteOptions options) {
  auto entry = std::make_shared<detail::RouteEntry>();
  entry->handler = std::move(handler);
  entry->blocking = options.blocking;
  entry->middleware = std::move(options.middleware);
  return entry;
}
}  // namespace

RouteError Routes::add(Method method, std::string_view pattern, Handler handler,
                       RouteOptions route_options) {
  RouteError error =
      impl_->router.add(method, pattern, make_entry(std::move(handler), std::move(route_options)));
  if (!error) ++impl_->count;
  return error;
}

RouteError Routes::add(std::string_view method_token, std::string_view pattern, Handler handler,
                       RouteOptions route_options) {
  RouteError error = impl_->router.add(method_token, pattern,
                                       make_entry(std::move(handler), std::move(route_options)));
  if (!error) ++impl_->count;
  return error;
}

RouteError Routes::add_any(std::string_view pattern, Handler handler, RouteOptions route_options) {
  RouteError error =
      impl_->router.add_any(pattern, make_entry(std::move(handler), std::move(route_options)));
  if (!error) ++impl_->count;
  return error;
}

std::size_t Routes::size() const noexcept { return impl_->count; }

namespace detail {

class ServerCore;
struct ReactorContext;
class Connection;

// ---- connection-state allocation --------------------------------------------

// A mimalloc heap per reactor for connection state (when built with it).
class StateHeap {
 public:
  void open() noexcept {
#if defined(PORTICO_HAVE_MIMALLOC)
    heap_ = mi_heap_new();
#endif
  }
  void close() noexcept {
#if defined(PORTICO_HAVE_MIMALLOC)
    // Blocks still out (none after a clean shutdown) move to the thread's
    // default heap rather than being freed.
    if (heap_ != nullptr) mi_heap_delete(heap_);
    heap_ = nullptr;
#endif
  }
  template <class T, class... Args>
  T* make(Args&&... args) {
#if defined(PORTICO_HAVE_MIMALLOC)
    if (heap_ != nullptr) {
      void* memory = mi_heap_malloc_aligned(heap_, sizeof(T), alignof(T));
      if (memory == nullptr) throw std::bad_alloc();
      return ::new (memory) T(std::forward<Args>(args)...);
    }
#endif
    return new T(std::forward<Args>(args)...);
  }
  template <class T>
  void destroy(T* object) noexcept {
#if defined(PORTICO_HAVE_MIMALLOC)
    if (heap_ != nullptr) {
      object->~T();
      mi_free(object);
      return;
    }
#endif
    delete object;
  }

 private:
#if defined(PORTICO_HAVE_MIMALLOC)
  mi_heap_t* heap_ = nullptr;
#endif
};

// ---- the input buffer ---------------------------------------------------------

// A connection's received bytes: a pooled block, or — for a request larger
// than a block — a heap buffer up to the connection's limit. Offsets from
// data() stay valid across grow() (it moves the readable bytes as a whole).
class InputBuffer {
 public:
  bool has_storage() const noexcept { return block_ || heap_; }
  bool acquire(BufferPool& pool) noexcept {
    block_ = pool.acquire();
    return static_cast<bool>(block_);
  }
  char* data() noexcept { return heap_ ? heap_->bytes.get() + heap_->begin : block_.data(); }
  std::size_t size() const noexcept { return heap_ ? heap_->end - heap_->begin : block_.size(); }
  std::span<char> tail() noexcept {
    return heap_ ? std::span<char>(heap_->bytes.get() + heap_->end, heap_->capacity - heap_->end)
                 : block_.prepare();
  }
  void commit(std::size_t n) noexcept {
    if (heap_) {
      heap_->end += n;
    } else {
      block_.commit(n);
    }
  }
  void consume(std::size_t n) noexcept {
    if (heap_) {
      heap_->begin += n;
      if (heap_->begin == heap_->end) heap_->begin = heap_->end = 0;
    } else {
      block_.consume(n);
    }
  }
  // Makes the tail non-empty: compacts, or moves to a bigger heap buffer of at
  // most `limit` bytes. False when the readable bytes already fill `limit`.
  bool grow(std::size_t limit) {
    if (!heap_) {
      if (block_.compact() && !block_.prepare().empty()) return true;
      const std::size_t used = block_.size();
      if (used >= limit) return false;
      auto heap = std::make_unique<Heap>();
      heap->capacity = std::min(limit, std::max<std::size_t>(used * 2, 4096));
      heap->bytes = std::make_unique<char[]>(heap->capacity);
      std::memcpy(heap->bytes.get(), block_.data(), used);
      heap->end = used;
      block_.reset();
      heap_ = std::move(heap);
      return true;
    }
    Heap& heap = *heap_;
    if (heap.begin > 0) {
      std::memmove(heap.bytes.get(), heap.bytes.get() + heap.begin, heap.end - heap.begin);
      heap.end -= heap.begin;
      heap.begin = 0;
      if (heap.end < heap.capacity) return true;
    }
    if (heap.capacity >= limit) return false;
    const std::size_t capacity = std::min(limit, heap.capacity * 2);
    auto fresh = std::make_unique<char[]>(capacity);
    std::memcpy(fresh.get(), heap.bytes.get(), heap.end);
    heap.bytes = std::move(fresh);
    heap.capacity = capacity;
    return true;
  }
  // Gives the storage back when nothing is left in it.
  void release_if_empty() noexcept {
    if (has_storage() && size() == 0) release();
  }
  void release() noexcept {
    block_.reset();
    heap_.reset();
  }

 private:
  // A request larger than one block (rare): kept out of line so an idle
  // connection stays small.
  struct Heap {
    std::unique_ptr<char[]> bytes;
    std::size_t begin = 0, end = 0, capacity = 0;
  };
  Buffer block_;
  std::unique_ptr<Heap> heap_;
};

// ---- one request/response exchange -------------------------------------------

struct Exchange {
  http1::Parser parser;
  Request request;
  Response response;
  Connection* connection = nullptr;
  ReactorContext* context = nullptr;
  Exchange* next_free = nullptr;

  bool keep_alive = true;       // set at dispatch; cleared by the response
  bool continue_due = false;    // Expect: 100-continue and the body is not all here
  bool stream_started = false;  // Completion::write() sent the head already

  // Dispatch state.
  const RouteEntry* route = nullptr;
  const RouteRef* route_ref = nullptr;  // into the table: valid during dispatch only
  RouteRef route_hold;  // held only while deferred: the table may change meanwhile
  std::size_t middleware_reached = 0;
  bool head_request = false;

  void reset_parse() noexcept;
  // Hands a finished deferred/offloaded exchange back to its reactor (any thread).
  void post_completion() noexcept;
  // A handler threw: the response becomes a plain 500 (still deferred if it was).
  static void internal_error(Response& res) noexcept;
};

struct ParamsAccess {
  static void rebind_names(Params& params, const std::string_view* names) noexcept {
    params.names_ = names;
  }
};

void Exchange::internal_error(Response& res) noexcept {
  const bool deferred = res.deferred_;
  res.reset();
  res.deferred_ = deferred;
  res.status(500);
  res.text("Internal Server Error");
}

// ---- per reactor ----------------------------------------------------------------

class Listener final : public IoHandler {
 public:
  explicit Listener(ReactorContext& context) noexcept;
  void on_io(std::uint32_t events) noexcept override;
  void close() noexcept;

  int fd = -1;
  Timer retry_timer;

 private:
  ReactorContext& context_;
};

struct ReactorStatsCounters {
  std::atomic<std::uint64_t> accepted{0}, rejected{0}, requests{0}, responses_4xx{0},
      responses_5xx{0}, rejected_503{0}, timeouts{0}, bad_requests{0};
  std::atomic<std::size_t> open{0};
};

// The responses a reactor serialises for one connection before sending them
// with one write. append() is inline, so a literal of known length becomes a
// few stores; std::string's and fmt::memory_buffer's appends are out-of-line
// calls, and the head of a response takes about ten of them.
class OutputBuffer {
 public:
  using value_type = char;  // for std::back_inserter (fmt::format_to)

  explicit OutputBuffer(std::size_t capacity)
      : data_(std::make_unique_for_overwrite<char[]>(capacity)), capacity_(capacity) {}

  const char* data() const noexcept { return data_.get(); }
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  void clear() noexcept { size_ = 0; }
  void truncate(std::size_t size) noexcept { size_ = size; }  // REQUIRES: size <= size()
  std::string_view view() const noexcept { return {data_.get(), size_}; }

  void append(std::string_view bytes) {
    if (bytes.size() > capacity_ - size_) grow(bytes.size());
    std::memcpy(data_.get() + size_, bytes.data(), bytes.size());
    size_ += bytes.size();
  }
  void push_back(char c) {
    if (size_ == capacity_) grow(1);
    data_[size_++] = c;
  }

 private:
  void grow(std::size_t extra);

  std::unique_ptr<char[]> data_;
  std::size_t size_ = 0;
  std::size_t capacity_;
};

void OutputBuffer::grow(std::size_t extra) {
  const std::size_t capacity = std::max(capacity_ * 2, size_ + extra);
  auto data = std::make_unique_for_overwrite<char[]>(capacity);
  std::memcpy(data.get(), data_.get(), size_);
  data_ = std::move(data);
  capacity_ = capacity;
}

struct ReactorContext {
  ReactorContext(ServerCore& core_ref, const ServerOptions& options);

  ServerCore& core;
  Reactor reactor;
  BufferPool pool;
  std::optional<RouteTable::Reader> reader;
  Listener listener;
  StateHeap heap;
  std::thread thread;

  // Serialised responses. out[0, out_mark) holds the sends queued this
  // iteration (queued_sends), sent together by flush_sends() at its end; the
  // connection being served appends its own after out_mark.
  OutputBuffer out{64 * 1024};
  std::size_t out_mark = 0;
  struct QueuedSend {
    Connection* connection;
    std::size_t offset;
    std::size_t length;
  };
  std::vector<QueuedSend> queued_sends;  // capacity kIoBatchDepth, never more
  std::vector<QueuedSend> sending;
  // Reads epoll reported this iteration, issued together by flush_reads().
  struct QueuedRead {
    Connection* connection;
    std::span<char> room;  // the connection's input buffer; valid while it is open
    std::uint32_t events;
  };
  std::vector<QueuedRead> queued_reads;  // capacity kIoBatchDepth, never more
  std::vector<IoOp> io_ops;
  IoBatch io_batch;
  std::string date_line;
  std::time_t date_second = 0;
  std::string access_log;

  Exchange* free_exchanges = nullptr;
  std::size_t free_exchange_count = 0;
  Connection* connections = nullptr;  // intrusive list of every live connection
  std::size_t connection_count = 0;
  std::size_t deferred_outstanding = 0;
  bool shutting_down = false;
  Timer shutdown_timer;
  ReactorStatsCounters counters;

  Exchange* acquire_exchange(Connection* connection);
  void release_exchange(Exchange* exchange) noexcept;
  // The bytes the connection being served has written and not yet flushed.
  std::string_view own_output() const noexcept { return out.view().substr(out_mark); }
  void drop_own_output() noexcept { out.truncate(out_mark); }
  // Queues own_output() for `connection`; false when batching is off or the
  // batch is full (then the caller sends it itself).
  bool queue_send(Connection* connection) noexcept;
  // Sends every queued response (one system call) and lets each connection
  // act on its result. Runs at the end of each loop iteration.
  void flush_sends() noexcept;
  // Queues a read for `connection` (epoll reported `events`); false when
  // batching is off or the batch is full (then the caller reads itself).
  bool queue_read(Connection* connection, std::uint32_t events) noexcept;
  // Issues every queued read (one system call) and lets each connection
  // serve what arrived. Runs at the end of each loop iteration, before
  // flush_sends().
  void flush_reads() noexcept;
  void refresh_date() noexcept;
  void begin_shutdown() noexcept;
  void maybe_finish_shutdown() noexcept;
  void flush_access_log() noexcept;
  void thread_main();
};

// ---- the server core ------------------------------------------------------------

class ServerCore {
 public:
  explicit ServerCore(const ServerOptions& options) : options_(options) {
    server_line_ = options.server_name.empty() ? std::string()
                                               : "Server: " + options.server_name + "\r\n";
    limits_ = http1::Limits{.max_request_line = options.max_request_line,
                            .max_header_bytes = options.max_header_bytes,
                            .max_header_count = options.max_header_count,
                            .max_body_bytes = options.max_body_bytes};
  }
  ~ServerCore() { stop_and_wait(); }

  // Applies `change` (a call on the route set) under the routes lock and, once
  // started, publishes the new table. Every route change goes through here.
  template <class Change>
  RouteError change_routes(Change&& change) {
    std::lock_guard lock(routes_mutex_);
    RouteError error = change(routes_);
    if (!error && started_.load(std::memory_order_acquire)) publish_locked();
    return error;
  }
  void use(Middleware middleware) { middleware_.push_back(std::move(middleware)); }
  void replace_routes(Routes table);
  std::error_code start(std::string& message, std::uint16_t& port);
  void stop() noexcept;
  void wait();
  void stop_and_wait() noexcept {
    stop();
    wait();
  }
  bool running() const noexcept { return running_reactors_.load(std::memory_order_acquire) > 0; }
  bool started() const noexcept { return started_.load(std::memory_order_acquire); }
  ServerStats stats() const noexcept;

  const ServerOptions& options() const noexcept { return options_; }
  const std::string& server_line() const noexcept { return server_line_; }
  const http1::Limits& limits() const noexcept { return limits_; }
  std::vector<Middleware>& middleware() noexcept { return middleware_; }
  RouteTable& table() noexcept { return *table_; }
  bool offload(Exchange* exchange) noexcept { return jobs_ && jobs_->try_push(exchange); }
  void reactor_exited() noexcept { running_reactors_.fetch_sub(1, std::memory_order_acq_rel); }

 private:
  void publish_locked();
  void worker_main();

  ServerOptions options_;
  http1::Limits limits_;
  std::string server_line_;
  std::vector<Middleware> middleware_;
  mutable std::mutex routes_mutex_;  // serialises route changes and publishing
  Routes routes_;
  std::unique_ptr<RouteTable> table_;
  std::vector<std::unique_ptr<ReactorContext>> contexts_;
  std::unique_ptr<MpmcQueue<Exchange*>> jobs_;
  std::vector<std::thread> workers_;
  std::atomic<int> running_reactors_{0};
  std::atomic<bool> started_{false};
  std::mutex wait_mutex_;
  bool joined_ = false;
};

// ---- the connection --------------------------------------------------------------

class Connection final : public IoHandler {
 public:
  Connection(ReactorContext& context, int fd) noexcept
      : timer_(&Connection::on_timer, this), context_(context), fd_(fd) {}

  void open();
  void on_io(std::uint32_t events) noexcept override;
  void handle_io(std::uint32_t events) noexcept;
  // A deferred or offloaded response is complete (runs on the loop thread).
  void on_completion(Exchange* exchange) noexcept;
  // Completion::write(): one chunk of a streamed response (loop thread).
  void on_stream_write(Exchange* exchange, std::string_view bytes) noexcept;
  // Shutdown: close if idle, else close after the current response.
  void on_shutdown() noexcept;
  void force_close() noexcept;
  // Closes the connection if nothing is in progress on it.
  void close_if_idle() noexcept;
  // The batched send of `bytes` (this connection's queued output) ended with
  // `result`: bytes sent or -errno (ReactorContext::flush_sends).
  void sent(std::string_view bytes, ssize_t result) noexcept;
  // The queued read into `room` ended with `result`: bytes or -errno
  // (ReactorContext::flush_reads).
  void received(std::span<char> room, ssize_t result, std::uint32_t events) noexcept;
  // Where a queued read goes: the free part of the input buffer, made ready
  // (acquired, grown). Empty when it cannot be (read_input then answers).
  std::span<char> read_room() noexcept;
  int io_fd() const noexcept { return closed_ ? -1 : fd_; }
  bool idle() const noexcept {
    return exchange_ == nullptr && pending_ == nullptr && !queued_send_ && !queued_read_;
  }
  std::size_t format_peer(char* out, std::size_t size) const noexcept;

  Connection* prev = nullptr;
  Connection* next = nullptr;

 private:
  enum class Phase : std::uint8_t { kIdle, kHead, kBody, kDeferred, kLinger };

  static void on_timer(Timer& timer, void* context) noexcept;
  // `events`: what epoll reported (EPOLLRDHUP: the peer's FIN is queued).
  // Reads from round `first_round` on (received() did round 0).
  void read_input(std::uint32_t events, int first_round = 0) noexcept;
  // Acts on one read of `asked` bytes that returned `result` (bytes or
  // -errno); true if the connection should read again.
  bool take_read(ssize_t result, std::size_t asked, std::uint32_t events) noexcept;
  void process_input() noexcept;
  void send_continue_if_due(Exchange& ex) noexcept;
  void dispatch() noexcept;
  MethodSet advertised(MethodSet routed) const noexcept;
  void run_handler() noexcept;
  void finish_response() noexcept;
  void complete_exchange() noexcept;
  void fail(int status) noexcept;
  void write_simple(int status, std::string_view extra_fields, std::string_view body) noexcept;
  enum class Framing : std::uint8_t { kLength, kChunked, kNone };
  void serialize(Exchange& exchange, std::string_view body) noexcept;
  void write_head(Exchange& exchange, Framing framing, std::size_t length) noexcept;
  // The status line, Server and Date: what every response starts with.
  void write_status_line(int status) noexcept;
  Framing framing_of(Exchange& exchange) noexcept;
  void append_chunk(Exchange& exchange, std::string_view bytes) noexcept;
  void run_afters(Exchange& exchange) noexcept;
  void flush() noexcept;
  // What follows a flush once the output is all written: close or linger.
  void after_write() noexcept;
  // `head` then `tail` must wait behind output not written yet (pending_,
  // or a queued send whose remainder sent() puts in front of them).
  void append_pending(std::string_view head, std::string_view tail = {});
  // A write of `head` then `tail` took `written` bytes: keeps the rest,
  // ahead of anything already pending.
  void keep_unwritten(std::string_view head, std::string_view tail, std::size_t written);
  // After a batched read or send: close if shutdown began meanwhile and the
  // connection is idle; update epoll interest and the timer (unless a send
  // is queued, whose sent() does it).
  void settle() noexcept;
  void flush_with(std::string_view body) noexcept;
  void write_pending() noexcept;
  void update_interest() noexcept;
  void update_timer() noexcept;
  void start_linger() noexcept;
  void drain_linger() noexcept;
  void close() noexcept;
  // Frees the connection once it is closed and no completion is out; the
  // last thing every entry point (on_io, on_timer, ...) does.
  void finish_entry() noexcept;
  std::optional<Ticks> deadline() const noexcept;
  Ticks now_ticks() const noexcept { return to_ticks(context_.reactor.now()); }
  std::size_t input_limit() const noexcept;

  Timer timer_;
  ReactorContext& context_;
  int fd_;
  std::uint32_t events_ = 0;  // current epoll interest
  std::uint32_t parsed_ = 0;  // bytes of in_ fed to the parser
  std::uint32_t requests_ = 0;
  InputBuffer in_;
  Exchange* exchange_ = nullptr;
  // Output a write could not take yet (rare: the socket buffer was full).
  struct Pending {
    std::string bytes;
    std::size_t offset = 0;
  };
  std::unique_ptr<Pending> pending_;
  // 32-bit millisecond stamps keep an idle connection in a 160-byte block.
  Ticks phase_start_ = 0;
  Ticks last_active_ = 0;
  Ticks armed_deadline_ = 0;
  Phase phase_ = Phase::kIdle;
  // Bit-fields: with the three stamps and phase_ they fill 16 bytes.
  bool close_after_write_ : 1 = false;
  bool peer_eof_ : 1 = false;     // the peer shut down its sending side
  bool queued_send_ : 1 = false;  // output waits in ReactorContext::queued_sends
  bool queued_read_ : 1 = false;  // a read waits in ReactorContext::queued_reads
  bool closed_ : 1 = false;       // fd closed; the object waits for a completion
};

// An idle keep-alive connection costs this object and nothing else (no read
// buffer, no exchange, no output): the budget is 256 bytes each.
// 160 is a mimalloc size class; the budget is 256 bytes of process
// memory per idle connection, and the reactor keeps 8-16 more (its fd table).
static_assert(sizeof(Connection) <= 160, "idle connection state outgrew its budget");

void Exchange::reset_parse() noexcept {
  parser.reset(http1::Mode::kRequest, &context->core.limits());
  keep_alive = true;
  continue_due = stream_started = false;
  route = nullptr;
  route_ref = nullptr;
  route_hold.reset();
  middleware_reached = 0;
  head_request = false;
  response.reset();
  response.exchange_ = this;
  request.header_count_ = 0;
  request.params_.clear();
  request.remote_length_ = 0;
}

// ---- ReactorContext ----------------------------------------------------------------

namespace {
BufferPoolOptions pool_options(const ServerOptions& options) {
  BufferPoolOptions pool;
  pool.block_size = std::max<std::size_t>(1024, (options.read_buffer_size + 63) / 64 * 64);
  pool.max_blocks = std::max<std::size_t>(1, options.max_read_buffers);
  pool.slab_size = std::min<std::size_t>(2 * 1024 * 1024, pool.block_size * pool.max_blocks);
  return pool;
}

void on_shutdown_timer(Timer& timer, void* context) noexcept {
  (void)timer;
  auto* ctx = static_cast<ReactorContext*>(context);
  // The drain deadline: close whatever is still open.
  Connection* c = ctx->connections;
  while (c != nullptr) {
    Connection* next = c->next;
    c->force_close();
    c = next;
  }
  ctx->maybe_finish_shutdown();
}

void on_accept_retry(Timer& timer, void* context) noexcept {
  (void)timer;
  auto* ctx = static_cast<ReactorContext*>(context);
  if (!ctx->shutting_down && ctx->listener.fd >= 0) {
    (void)ctx->reactor.modify(ctx->listener.fd, EPOLLIN, &ctx->listener);
  }
}
}  // namespace

ReactorContext::ReactorContext(ServerCore& core_ref, const ServerOptions& options)
    : core(core_ref),
      reactor(ReactorOptions{}),
      pool(pool_options(options)),
      listener(*this),
      shutdown_timer(&on_shutdown_timer, this) {}

Exchange* ReactorContext::acquire_exchange(Connection* connection) {
  Exchange* ex = free_exchanges;
  if (ex != nullptr) {
    free_exchanges = ex->next_free;
    --free_exchange_count;
  } else {
    ex = heap.make<Exchange>();
    ex->context = this;
  }
  ex->next_free = nullptr;
  ex->connection = connection;
  ex->reset_parse();
  ex->request.connection_ = connection;
  return ex;
}

void ReactorContext::release_exchange(Exchange* ex) noexcept {
  ex->route_hold.reset();
  ex->connection = nullptr;
  // Keep a bounded reserve: a burst of slow requests must not pin its peak.
  if (free_exchange_count >= kExchangeReserve) {
    heap.destroy(ex);
    return;
  }
  ex->next_free = free_exchanges;
  free_exchanges = ex;
  ++free_exchange_count;
}

void Exchange::post_completion() noexcept {
  // post() never drops a task; the reactor stays up while completions are out.
  Exchange* self = this;
  context->reactor.post([self] { self->connection->on_completion(self); });
}

void ReactorContext::refresh_date() noexcept {
  const std::time_t now = std::time(nullptr);
  if (now == date_second && !date_line.empty()) return;
  date_second = now;
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[64];
  const std::size_t n = std::strftime(text, sizeof text, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
  date_line.assign(text, n);
}

void ReactorContext::flush_access_log() noexcept {
  const int fd = core.options().access_log_fd;
  std::size_t done = 0;
  while (done < access_log.size()) {
    const ssize_t n = sys::write(fd, access_log.data() + done, access_log.size() - done);
    if (n <= 0) break;  // a log that cannot be written is dropped, never blocks serving
    done += static_cast<std::size_t>(n);
  }
  access_log.clear();
}

void ReactorContext::begin_shutdown() noexcept {
  if (shutting_down) return;
  shutting_down = true;
  reactor.cancel(listener.retry_timer);
  listener.close();
  Connection* c = connections;
  while (c != nullptr) {
    Connection* next = c->next;
    c->on_shutdown();
    c = next;
  }
  const auto timeout = core.options().shutdown_timeout;
  reactor.arm(shutdown_timer, timeout.count() > 0 ? timeout : std::chrono::milliseconds(0));
  maybe_finish_shutdown();
}

void ReactorContext::maybe_finish_shutdown() noexcept {
  if (shutting_down && connection_count == 0 && deferred_outstanding == 0) {
    reactor.cancel(shutdown_timer);
    reactor.stop();
  }
}

void ReactorContext::thread_main() {
  pool.bind_to_current_thread();
  heap.open();
  refresh_date();
  if (core.options().batch_io && io_batch.open(kIoBatchDepth)) {
    queued_sends.reserve(kIoBatchDepth);
    sending.reserve(kIoBatchDepth);
    queued_reads.reserve(kIoBatchDepth);
    io_ops.reserve(kIoBatchDepth);
  }
  reactor.add_iteration_hook([this] {
    flush_reads();
    flush_sends();
    refresh_date();
    if (!access_log.empty()) flush_access_log();
    // A quiescent point for the route table: nothing here holds a view into
    // it across iterations (deferred requests own their parameter names and
    // hold their route by shared_ptr).
    if (reader) reader->quiescent();
  });
  reactor.run();
  // None are queued after the last iteration's hook; kept for safety.
  flush_reads();
  flush_sends();
  // Stopped: everything was closed by the shutdown; free the pooled state.
  reactor.cancel(shutdown_timer);
  reactor.cancel(listener.retry_timer);
  while (connections != nullptr) connections->force_close();
  while (free_exchanges != nullptr) {
    Exchange* next = free_exchanges->next_free;
    heap.destroy(free_exchanges);
    free_exchanges = next;
  }
  if (!access_log.empty()) flush_access_log();
  reader.reset();
  heap.close();
  core.reactor_exited();
}

// ---- Listener -----------------------------------------------------------------------

Listener::Listener(ReactorContext& context) noexcept
    : retry_timer(&on_accept_retry, &context), context_(context) {}

void Listener::close() noexcept {
  if (fd < 0) return;
  (void)context_.reactor.remove(fd);
  sys::close(fd);
  fd = -1;
}

void Listener::on_io(std::uint32_t /*events*/) noexcept {
  const ServerOptions& options = context_.core.options();
  for (int i = 0; i < 64 && fd >= 0; ++i) {
    // The peer's address is looked up only if asked for (getpeername).
    const int client = sys::accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (client < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // Out of descriptors: stop polling the listener for a moment rather
        // than spin on a level-triggered readiness we cannot clear.
        (void)context_.reactor.modify(fd, 0, this);
        context_.reactor.arm(retry_timer, kAcceptRetry);
        return;
      }
      continue;  // ECONNABORTED and friends: that client is gone
    }
    if (context_.connection_count >= options.max_connections || context_.shutting_down) {
      bump(context_.counters.rejected);
      sys::close(client);
      continue;
    }
    const int one = 1;
    (void)::setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    Connection* connection = nullptr;
    try {
      connection = context_.heap.make<Connection>(context_, client);
    } catch (...) {
      bump(context_.counters.rejected);
      sys::close(client);
      continue;
    }
    bump(context_.counters.accepted);
    connection->open();
  }
}

// ---- Connection ------------------------------------------------------------------

void Connection::open() {
  ++context_.connection_count;
  context_.counters.open.store(context_.connection_count, std::memory_order_relaxed);
  next = context_.connections;
  if (next != nullptr) next->prev = this;
  context_.connections = this;
  last_active_ = now_ticks();
  events_ = EPOLLIN | EPOLLRDHUP;
  if (context_.reactor.add(fd_, events_ | kConnectionTrigger, this)) {
    close();
    finish_entry();
    return;
  }
  update_timer();
}

std::size_t Connection::input_limit() const noexcept {
  const ServerOptions& options = context_.core.options();
  // Head plus body, with room for chunk framing (de-chunking is in place, so
  // framing bytes stay in the buffer until the request completes).
  return options.max_header_bytes + 2 * options.max_body_bytes + 64 * 1024;
}

void Connection::on_io(std::uint32_t events) noexcept {
  handle_io(events);
  finish_entry();  // frees the connection if handle_io closed it
}

void Connection::handle_io(std::uint32_t events) noexcept {
  if (closed_) return;
  last_active_ = now_ticks();
  if (events & EPOLLERR) {
    close();
    return;
  }
  if (events & EPOLLOUT) {
    write_pending();
    if (closed_) return;
  }
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) {
    if (phase_ == Phase::kLinger) {
      drain_linger();
      return;
    }
    if (exchange_ != nullptr && phase_ == Phase::kDeferred) {
      // Not reading while a deferred response is out. A hang-up means the
      // peer is gone: close the fd and wait for the completion. A half-close
      // still lets the response go out.
      if (events & EPOLLHUP) {
        close();
      } else if (events & EPOLLRDHUP) {
        peer_eof_ = true;
        update_interest();
      }
      return;
    }
    // Issued with the iteration's other reads; received() goes on from there.
    if (context_.queue_read(this, events)) {
      queued_read_ = true;
      return;
    }
    read_input(events);
    if (closed_) return;
  }
  flush();
  if (closed_) return;
  update_interest();
  update_timer();
}

std::span<char> Connection::read_room() noexcept {
  if (!in_.has_storage() && !in_.acquire(context_.pool)) return {};
  std::span<char> tail = in_.tail();
  if (tail.empty() && in_.grow(input_limit())) tail = in_.tail();
  return tail;
}

void Connection::read_input(std::uint32_t events, int first_round) noexcept {
  for (int round = first_round; round < kMaxReadsPerEvent; ++round) {
    const std::span<char> tail = read_room();
    if (tail.empty()) {
      if (!in_.has_storage()) {
        // Out of read buffers: answer what we can and shed this connection.
        bump(context_.counters.rejected_503);
        write_simple(503, "Retry-After: 1\r\n", "");
        close_after_write_ = true;
      } else {
        fail(exchange_ != nullptr && exchange_->parser.head_complete() ? 413 : 431);
      }
      return;
    }
    const ssize_t n = sys::recv(fd_, tail.data(), tail.size());
    if (!take_read(n >= 0 ? n : -errno, tail.size(), events)) return;
  }
  // Read kMaxReadsPerEvent times without draining (a fast sender): yield to
  // the other connections. Edge-triggered, nothing would report these bytes
  // again, so re-arm: EPOLL_CTL_MOD queues the fd if it is still readable.
  if (context_.reactor.modify(fd_, events_ | kConnectionTrigger, this)) close();
}

bool Connection::take_read(ssize_t result, std::size_t asked, std::uint32_t events) noexcept {
  if (result == 0) {
    // The peer closed its sending side. Requests already complete in the
    // buffer were answered (or are deferred); a partial one can never
    // complete. flush() closes once the last response is out.
    peer_eof_ = true;
    if (exchange_ != nullptr && phase_ != Phase::kDeferred) {
      context_.release_exchange(exchange_);
      exchange_ = nullptr;
      phase_ = Phase::kIdle;
    }
    return false;
  }
  if (result < 0) {
    if (result == -EINTR) return true;
    if (result == -EAGAIN || result == -EWOULDBLOCK) {
      in_.release_if_empty();
      return false;
    }
    close();
    return false;
  }
  in_.commit(static_cast<std::size_t>(result));
  process_input();
  if (closed_ || close_after_write_ || phase_ == Phase::kDeferred || pending_ != nullptr) return false;
  if (static_cast<std::size_t>(result) < asked) {
    // A short read drained the socket; more bytes bring a new edge. But a
    // FIN that came with these bytes brings none: read on to see it.
    if (events & EPOLLRDHUP) return true;
    in_.release_if_empty();
    return false;
  }
  return true;
}

void Connection::received(std::span<char> room, ssize_t result, std::uint32_t events) noexcept {
  queued_read_ = false;
  if (!closed_) {
    if (take_read(result, room.size(), events) && !closed_) read_input(events, 1);
    if (!closed_) flush();
    settle();
  }
  finish_entry();
}

bool ReactorContext::queue_read(Connection* connection, std::uint32_t events) noexcept {
  if (!io_batch.active() || queued_reads.size() == kIoBatchDepth) return false;
  const std::span<char> room = connection->read_room();
  if (room.empty()) return false;  // read_input answers 503/413/431
  queued_reads.push_back({connection, room, events});
  return true;
}

void ReactorContext::flush_reads() noexcept {
  if (queued_reads.empty()) return;
  // One pass: received() reads on by itself (read_input) and never queues a
  // read; only handle_io does.
  io_ops.clear();
  for (const QueuedRead& q : queued_reads) {
    // A connection closed since (a timer; its buffer may be gone) reads
    // nothing: fd -1. An open one's input buffer stays as queued: nothing
    // else reads into it, and its timer waits for received().
    io_ops.push_back({q.connection->io_fd(), q.room.data(), q.room.size(), 0});
  }
  io_batch.recv_all(io_ops);
  for (std::size_t i = 0; i < queued_reads.size(); ++i) {
    const IoOp& op = io_ops[i];
    queued_reads[i].connection->received({op.data, op.size}, op.result, queued_reads[i].events);
  }
  queued_reads.clear();
}

// Expect: 100-continue with the body not all here: the client waits for
// this before sending it.
void Connection::send_continue_if_due(Exchange& ex) noexcept {
  if (!ex.continue_due || closed_ || close_after_write_) return;
  ex.continue_due = false;
  http1::write_continue(context_.out);
}

void Connection::process_input() noexcept {
  const ServerOptions& options = context_.core.options();
  while (!closed_ && !close_after_write_ && phase_ != Phase::kDeferred) {
    const std::size_t available = in_.size() - parsed_;
    if (available == 0) break;
    if (exchange_ == nullptr) {
      try {
        exchange_ = context_.acquire_exchange(this);
      } catch (...) {
        fail(503);
        return;
      }
      phase_ = Phase::kHead;
      phase_start_ = now_ticks();
    }
    Exchange& ex = *exchange_;
    const http1::Progress progress =
        ex.parser.execute(in_.data(), parsed_, static_cast<std::uint32_t>(in_.size()));
    parsed_ = progress.at;
    switch (progress.event) {
      case http1::Event::kNeedMore:
        if (!ex.parser.head_complete() && parsed_ > options.max_header_bytes) {
          fail(431);
          return;
        }
        send_continue_if_due(ex);
        return;
      case http1::Event::kHead:
        phase_ = Phase::kBody;
        phase_start_ = now_ticks();
        ex.continue_due = ex.parser.expect_continue();
        if (parsed_ == in_.size()) send_continue_if_due(ex);
        continue;  // the body, or as much of it as is here
      case http1::Event::kMessage:
        dispatch();
        if (phase_ == Phase::kDeferred || closed_) return;
        complete_exchange();
        continue;
      case http1::Event::kError:
        bump(context_.counters.bad_requests);
        fail(ex.parser.error_status());
        return;
    }
  }
}

namespace {
std::string_view target_path(std::string_view target) noexcept {
  // absolute-form ("http://host/path?q"): route on the path part.
  if (!target.empty() && target.front() != '/') {
    const std::size_t scheme = target.find("://");
    if (scheme != std::string_view::npos) {
      const std::size_t slash = target.find('/', scheme + 3);
      return slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
    }
  }
  return target;
}

void append_json_string(std::string& out, std::string_view text) {
  out.push_back('"');
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (byte < 0x20 || byte == 0x7f) {
      fmt::format_to(std::back_inserter(out), "\\u{:04x}", byte);
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
}
}  // namespace

// The methods an Allow header lists for routes taking `routed`: HEAD wherever
// GET is (HEAD falls back to the GET route), and OPTIONS when the server
// answers it.
MethodSet Connection::advertised(MethodSet routed) const noexcept {
  if (routed.contains(Method::Get)) routed.insert(Method::Head);
  if (context_.core.options().handle_options) routed.insert(Method::Options);
  return routed;
}

void Connection::dispatch() noexcept {
  Exchange& ex = *exchange_;
  Request& req = ex.request;
  const ServerOptions& options = context_.core.options();
  const char* base = in_.data();

  // Views into the buffer, now that it no longer moves for this request.
  const http1::Parser& parsed = ex.parser;
  req.method_name_ = parsed.method().view(base);
  req.method_ = parse_method(req.method_name_);
  req.target_ = parsed.target().view(base);
  const std::string_view path_and_query = target_path(req.target_);
  const std::size_t question = path_and_query.find('?');
  req.path_ = path_and_query.substr(0, question);
  req.query_ = question == std::string_view::npos ? std::string_view{}
                                                  : path_and_query.substr(question + 1);
  const std::span<const http1::Field> fields = parsed.fields();
  const std::size_t count = fields.size();
  if (req.headers_.size() < count) req.headers_.resize(count);
  for (std::size_t i = 0; i < count; ++i)
    req.headers_[i] = Header{fields[i].name.view(base), fields[i].value.view(base)};
  req.header_count_ = count;
  req.body_ = parsed.body().view(base);
  req.version_minor_ = parsed.version_minor();
  ++requests_;
  bump(context_.counters.requests);

  bool keep_alive = parsed.keep_alive() && !parsed.upgrade() && !context_.shutting_down;
  if (options.max_requests_per_connection != 0 && requests_ >= options.max_requests_per_connection)
    keep_alive = false;
  ex.keep_alive = keep_alive;
  req.keep_alive_ = keep_alive;
  ex.head_request = req.method_ == Method::Head;

  // Route.
  const FrozenRouter<RouteRef>& table = context_.reader->table();
  Response& res = ex.response;
  if (req.method_ == Method::Options && req.target_ == "*" && options.handle_options) {
    // A question about the server as a whole: every method some route takes.
    res.status(200);
    res.header("Allow", table.allow_header(advertised(table.methods())));
    finish_response();
    return;
  }
  RouteMatch<RouteRef> match = req.method_ ? table.match(*req.method_, req.path_, req.params_)
                                           : table.match(req.method_name_, req.path_, req.params_);
  if (!match && ex.head_request) {
    // HEAD falls back to the GET route; the body is not sent.
    Params params;
    RouteMatch<RouteRef> get = table.match(Method::Get, req.path_, params);
    if (get) {
      match = get;
      req.params_ = params;
    }
  }
  if (match) {
    ex.route_ref = match.handler;
    ex.route = match.handler->get();
    if (!req.params_.empty())
      ParamsAccess::rebind_names(req.params_, ex.route->param_names(req.params_));
    run_handler();
    return;
  }
  const bool is_connect = req.method_ == Method::Connect;
  if (!is_connect && req.path_ != "/" &&
      (options.redirect_trailing_slash || options.redirect_fixed_path)) {
    std::optional<std::string> location;
    if (options.redirect_trailing_slash && match.redirect_trailing_slash) {
      std::string fixed(req.path_);
      if (fixed.size() > 1 && fixed.back() == '/') {
        fixed.pop_back();
      } else {
        fixed.push_back('/');
      }
      location = std::move(fixed);
    } else if (options.redirect_fixed_path) {
      location = req.method_ ? table.fixed_path(*req.method_, req.path_, true)
                             : table.fixed_path(req.method_name_, req.path_, true);
      if (location && *location == req.path_) location.reset();
    }
    if (location) {
      if (!req.query_.empty()) {
        location->push_back('?');
        location->append(req.query_);
      }
      res.status(req.method_ == Method::Get ? 301 : 308);
      res.header("Location", *location);
      finish_response();
      return;
    }
  }
  if (match.status == MatchStatus::kMethodNotAllowed) {
    // The path exists. An OPTIONS request without a route of its own is
    // answered with what the path takes (httprouter's HandleOPTIONS);
    // anything else is 405 with the same list.
    const bool answer_options = req.method_ == Method::Options && options.handle_options;
    res.status(answer_options ? 200 : 405);
    res.header("Allow", table.allow_header(advertised(match.allowed)));
    if (!answer_options) res.text("Method Not Allowed");  // as 404 says "Not Found"
  } else {
    res.status(404);
    res.text("Not Found");
  }
  finish_response();
}


void Connection::run_handler() noexcept {
  Exchange& ex = *exchange_;
  Request& req = ex.request;
  Response& res = ex.response;
  std::vector<Middleware>& server_mw = context_.core.middleware();
  std::vector<Middleware>& route_mw = ex.route->middleware;
  const std::size_t total = server_mw.size() + route_mw.size();
  try {
    for (std::size_t i = 0; i < total; ++i) {
      Middleware& mw = i < server_mw.size() ? server_mw[i] : route_mw[i - server_mw.size()];
      ex.middleware_reached = i + 1;
      if (mw.before && !mw.before(req, res)) {
        finish_response();
        return;
      }
    }
    if (ex.route->blocking) {
      // Offloaded: a worker runs the handler, then completes the exchange.
      res.deferred_ = true;
      ex.route_hold = *ex.route_ref;
      ++context_.deferred_outstanding;
      phase_ = Phase::kDeferred;
      if (context_.core.offload(&ex)) return;
      --context_.deferred_outstanding;
      phase_ = Phase::kHead;
      ex.route_hold.reset();
      res.reset();
      bump(context_.counters.rejected_503);
      res.status(503);
      res.header("Retry-After", fmt::format_int(context_.core.options().retry_after_seconds).c_str());
      res.text("Service Unavailable");
      finish_response();
      return;
    }
    ex.route->handler(req, res);
  } catch (...) {
    if (res.deferred_) return;  // the Completion is out; it finishes the exchange
    Exchange::internal_error(res);
  }
  if (res.deferred_) {
    ex.route_hold = *ex.route_ref;
    ++context_.deferred_outstanding;
    phase_ = Phase::kDeferred;
    return;
  }
  finish_response();
}

void Connection::finish_response() noexcept {
  Exchange& ex = *exchange_;
  Response& res = ex.response;
  if (!ex.stream_started) run_afters(ex);
  if (res.status_ < 100 || res.status_ > 999) res.status_ = 500;
  if (res.close_ || context_.shutting_down) ex.keep_alive = false;
  if (!ex.keep_alive) close_after_write_ = true;
  serialize(ex, res.body_);
}

void Connection::run_afters(Exchange& ex) noexcept {
  Request& req = ex.request;
  Response& res = ex.response;
  if (ex.route != nullptr && ex.middleware_reached > 0) {
    std::vector<Middleware>& server_mw = context_.core.middleware();
    std::vector<Middleware>& route_mw = ex.route->middleware;
    for (std::size_t i = ex.middleware_reached; i-- > 0;) {
      Middleware& mw = i < server_mw.size() ? server_mw[i] : route_mw[i - server_mw.size()];
      if (!mw.after) continue;
      try {
        mw.after(req, res);
      } catch (...) {
        const bool deferred = res.deferred_;
        res.reset();
        res.deferred_ = deferred;
        res.status(500);
      }
    }
  }
}

void Connection::write_status_line(int status) noexcept {
  OutputBuffer& out = context_.out;
  if (status == 200) {
    out.append("HTTP/1.1 200 OK\r\n"sv);
  } else {
    fmt::format_to(std::back_inserter(out), "HTTP/1.1 {} {}\r\n", status, reason_phrase(status));
  }
  out.append(context_.core.server_line());
  out.append(context_.date_line);
}

void Connection::write_head(Exchange& ex, Framing framing, std::size_t length) noexcept {
  OutputBuffer& out = context_.out;
  const Response& res = ex.response;
  const int status = res.status_;
  write_status_line(status);
  if (const std::string_view type = res.content_type_value(); !type.empty()) {
    out.append("Content-Type: "sv);
    out.append(type);
    out.append("\r\n"sv);
  }
  out.append(res.fields_);
  if (framing == Framing::kLength) {
    const fmt::format_int digits(length);
    out.append("Content-Length: "sv);
    out.append({digits.data(), digits.size()});
    out.append("\r\n"sv);
  } else if (framing == Framing::kChunked) {
    out.append("Transfer-Encoding: chunked\r\n"sv);
  }
  if (!ex.keep_alive) {
    out.append("Connection: close\r\n"sv);
  } else if (ex.parser.version_minor() == 0) {
    out.append("Connection: keep-alive\r\n"sv);
  }
  out.append("\r\n"sv);
  if (status >= 400) bump(status >= 500 ? context_.counters.responses_5xx : context_.counters.responses_4xx);
}

// How the body of `ex` is framed: a chunked response to an HTTP/1.0 client is
// delimited by closing the connection instead.
Connection::Framing Connection::framing_of(Exchange& ex) noexcept {
  const int status = ex.response.status_;
  if (status < 200 || status == 204 || status == 304) return Framing::kNone;
  if (!ex.response.chunked_) return Framing::kLength;
  if (ex.parser.version_minor() >= 1) return Framing::kChunked;
  ex.keep_alive = false;
  close_after_write_ = true;
  return Framing::kNone;
}

void Connection::append_chunk(Exchange& ex, std::string_view bytes) noexcept {
  if (bytes.empty() || ex.head_request) return;
  OutputBuffer& out = context_.out;
  if (ex.parser.version_minor() == 0) {  // close-delimited
    out.append(bytes);
    return;
  }
  fmt::format_to(std::back_inserter(out), "{:x}\r\n", bytes.size());
  out.append(bytes);
  out.append("\r\n"sv);
}

void Connection::on_stream_write(Exchange* ex, std::string_view bytes) noexcept {
  assert(ex == exchange_);
  if (closed_) return;  // the peer left; the completion cleans up
  if (!ex->stream_started) {
    run_afters(*ex);
    ex->response.chunked_ = true;
    if (context_.shutting_down) ex->keep_alive = false;
    write_head(*ex, framing_of(*ex), 0);
    ex->stream_started = true;
  }
  append_chunk(*ex, bytes);
  flush();
  if (!closed_) {
    update_interest();
    update_timer();
  }
}

void Connection::serialize(Exchange& ex, std::string_view body) noexcept {
  OutputBuffer& out = context_.out;
  const Response& res = ex.response;
  const int status = res.status_;
  if (ex.stream_started) {
    // Streamed: the head went out with the first write(); the rest of the
    // body is the last chunk, then the terminator.
    append_chunk(ex, body);
    if (ex.parser.version_minor() >= 1 && !ex.head_request) out.append("0\r\n\r\n"sv);
  } else {
    const Framing framing = framing_of(ex);
    write_head(ex, framing, body.size());
    if (framing == Framing::kChunked) {
      append_chunk(ex, body);
      if (!ex.head_request) out.append("0\r\n\r\n"sv);
      body = {};
    } else if (framing == Framing::kNone && status >= 200 && status != 204 && status != 304) {
      append_chunk(ex, body);  // close-delimited
      body = {};
    } else if (framing == Framing::kNone) {
      body = {};
    }
  }

  const ServerOptions& options = context_.core.options();
  if (options.access_log != AccessLogFormat::kOff) {
    char when[64];
    std::tm tm{};
    gmtime_r(&context_.date_second, &tm);
    std::string_view peer = ex.request.remote_address();
    if (options.access_log == AccessLogFormat::kCommon) {
      const std::size_t n = std::strftime(when, sizeof when, "%d/%b/%Y:%H:%M:%S +0000", &tm);
      fmt::format_to(std::back_inserter(context_.access_log), "{} - - [{}] \"{} {} HTTP/1.{}\" {} {}\n",
                     peer.substr(0, peer.rfind(':')), std::string_view(when, n),
                     ex.request.method_name_, ex.request.target_, ex.request.version_minor_, status,
                     res.body_.size());
    } else {
      const std::size_t n = std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
      std::string& log = context_.access_log;
      log.append("{\"time\":\""sv);
      log.append(when, n);
      log.append("\",\"remote\":"sv);
      append_json_string(log, peer);
      log.append(",\"method\":"sv);
      append_json_string(log, ex.request.method_name_);
      log.append(",\"target\":"sv);
      append_json_string(log, ex.request.target_);
      fmt::format_to(std::back_inserter(log), ",\"status\":{},\"bytes\":{}}}\n", status,
                     res.body_.size());
    }
  }

  if (ex.stream_started || ex.head_request || body.empty()) return;
  if (body.size() >= kBigBody) {
    flush_with(body);
  } else {
    out.append(body);
  }
}

void Connection::write_simple(int status, std::string_view extra_fields,
                              std::string_view body) noexcept {
  OutputBuffer& out = context_.out;
  write_status_line(status);
  if (!body.empty()) out.append("Content-Type: text/plain\r\n"sv);
  out.append(extra_fields);
  const fmt::format_int length(body.size());
  out.append("Content-Length: "sv);
  out.append({length.data(), length.size()});
  out.append("\r\nConnection: close\r\n\r\n"sv);
  out.append(body);
  bump(status >= 500 ? context_.counters.responses_5xx : context_.counters.responses_4xx);
}

void Connection::fail(int status) noexcept {
  if (exchange_ != nullptr && phase_ != Phase::kDeferred) {
    context_.release_exchange(exchange_);
    exchange_ = nullptr;
  }
  if (status == 408) bump(context_.counters.timeouts);
  write_simple(status, "", reason_phrase(status));
  close_after_write_ = true;
  phase_ = Phase::kIdle;
}

void Connection::complete_exchange() noexcept {
  in_.consume(parsed_);
  parsed_ = 0;
  context_.release_exchange(exchange_);
  exchange_ = nullptr;
  phase_ = Phase::kIdle;
  last_active_ = now_ticks();
}

void Connection::on_completion(Exchange* exchange) noexcept {
  assert(exchange == exchange_);
  (void)exchange;
  --context_.deferred_outstanding;
  if (closed_) {
    // The peer left (or shutdown forced a close) while the response was out.
    context_.release_exchange(exchange_);
    exchange_ = nullptr;
    in_.release();
    finish_entry();
    return;
  }
  phase_ = Phase::kHead;
  finish_response();
  complete_exchange();
  process_input();  // requests pipelined behind the deferred one
  flush();
  if (!closed_) {
    update_interest();
    update_timer();
  }
  finish_entry();
}

void Connection::on_shutdown() noexcept {
  close_if_idle();
  finish_entry();
  // Otherwise the response in progress goes out with Connection: close
  // (dispatch sees shutting_down); the drain deadline bounds the wait.
}

void Connection::close_if_idle() noexcept {
  if (!closed_ && idle() && phase_ != Phase::kLinger && in_.size() == 0) close();
}

void Connection::force_close() noexcept {
  close();
  finish_entry();
}

void Connection::flush() noexcept {
  if (closed_) {
    context_.drop_own_output();
    return;
  }
  const std::string_view own = context_.own_output();
  if (!own.empty()) {
    if (pending_ != nullptr || queued_send_) {
      append_pending(own);
      context_.drop_own_output();
      write_pending();
      return;
    }
    if (context_.queue_send(this)) {
      queued_send_ = true;
      return;  // sent() finishes the flush once the batch has gone out
    }
    const ssize_t n = sys::send(fd_, own.data(), own.size());
    if (n == static_cast<ssize_t>(own.size())) {
      context_.drop_own_output();
    } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      context_.drop_own_output();
      close();
      return;
    } else {
      keep_unwritten(own, {}, n > 0 ? static_cast<std::size_t>(n) : 0);
      context_.drop_own_output();
    }
  }
  after_write();
}

void Connection::append_pending(std::string_view head, std::string_view tail) {
  if (pending_ == nullptr) pending_ = std::make_unique<Pending>();
  pending_->bytes.append(head);
  pending_->bytes.append(tail);
}

void Connection::keep_unwritten(std::string_view head, std::string_view tail, std::size_t written) {
  if (written < head.size()) {
    head.remove_prefix(written);
  } else {
    tail.remove_prefix(written - head.size());
    head = {};
  }
  std::string rest;
  const std::string_view before =
      pending_ != nullptr ? std::string_view(pending_->bytes).substr(pending_->offset) : std::string_view();
  rest.reserve(head.size() + tail.size() + before.size());
  rest.append(head);
  rest.append(tail);
  rest.append(before);
  if (pending_ == nullptr) pending_ = std::make_unique<Pending>();
  pending_->bytes = std::move(rest);
  pending_->offset = 0;
  last_active_ = now_ticks();
}

void Connection::settle() noexcept {
  if (context_.shutting_down) close_if_idle();  // on_shutdown() skipped us
  if (!closed_ && !queued_send_) {
    update_interest();
    update_timer();
  }
}

void Connection::after_write() noexcept {
  if (pending_ == nullptr && phase_ != Phase::kLinger && phase_ != Phase::kDeferred) {
    if (peer_eof_) {
      // Everything the peer sent before its FIN has been answered.
      close();
    } else if (close_after_write_) {
      start_linger();
    }
  }
}

void Connection::sent(std::string_view bytes, ssize_t result) noexcept {
  queued_send_ = false;
  if (!closed_) {
    if (result == static_cast<ssize_t>(bytes.size())) {
      // Output flushed while this send was queued waits in pending_.
      if (pending_ != nullptr) write_pending();
    } else if (result < 0 && result != -EAGAIN && result != -EWOULDBLOCK) {
      close();
    } else {
      // The socket buffer is full: keep the rest, ahead of anything flushed
      // since (write_pending sent none of it while the send was queued).
      keep_unwritten(bytes, {}, result > 0 ? static_cast<std::size_t>(result) : 0);
    }
    if (!closed_) after_write();
    settle();
  }
  finish_entry();
}

bool ReactorContext::queue_send(Connection* connection) noexcept {
  if (!io_batch.active() || queued_sends.size() == kIoBatchDepth) return false;
  queued_sends.push_back({connection, out_mark, out.size() - out_mark});
  out_mark = out.size();
  return true;
}

void ReactorContext::flush_sends() noexcept {
  // A connection acting on its result may queue again (write_pending serves
  // requests that waited): loop until nothing is queued.
  while (!queued_sends.empty()) {
    sending.swap(queued_sends);
    io_ops.clear();
    for (const QueuedSend& q : sending)
      io_ops.push_back({q.connection->io_fd(), const_cast<char*>(out.data()) + q.offset, q.length, 0});
    io_batch.send_all(io_ops);
    for (std::size_t i = 0; i < sending.size(); ++i) {
      // Offsets, not pointers: a connection's sent() may grow out.
      const QueuedSend& q = sending[i];
      q.connection->sent({out.data() + q.offset, q.length}, io_ops[i].result);
    }
    sending.clear();
  }
  out.clear();
  out_mark = 0;
}

void Connection::flush_with(std::string_view body) noexcept {
  if (closed_) {
    context_.drop_own_output();
    return;
  }
  const std::string_view own = context_.own_output();
  if (pending_ != nullptr || queued_send_) {
    append_pending(own, body);
    context_.drop_own_output();
    return;
  }
  iovec iov[2] = {{const_cast<char*>(own.data()), own.size()}, {const_cast<char*>(body.data()), body.size()}};
  const ssize_t n = sys::sendv(fd_, iov, 2);
  const std::size_t total = own.size() + body.size();
  if (n == static_cast<ssize_t>(total)) {
    context_.drop_own_output();
    return;
  }
  if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
    // The connection is broken; close once the current dispatch unwinds.
    context_.drop_own_output();
    close_after_write_ = true;
    pending_.reset();
    return;
  }
  keep_unwritten(own, body, n > 0 ? static_cast<std::size_t>(n) : 0);
  context_.drop_own_output();
}

void Connection::write_pending() noexcept {
  // While a batched send is queued, its bytes go first: sent() calls back.
  if (pending_ == nullptr || closed_ || queued_send_) return;
  Pending& pending = *pending_;
  const ssize_t n = sys::send(fd_, pending.bytes.data() + pending.offset,
                              pending.bytes.size() - pending.offset);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    close();
    return;
  }
  pending.offset += static_cast<std::size_t>(n);
  last_active_ = now_ticks();
  if (pending.offset < pending.bytes.size()) return;
  pending_.reset();
  if (close_after_write_) {
    start_linger();
    return;
  }
  // Requests that arrived while output was blocked.
  process_input();
  flush();
}

void Connection::start_linger() noexcept {
  // Half-close and drain what the client still sends, so our last response
  // is not destroyed by a reset (closing with unread input sends RST).
  if (exchange_ != nullptr && phase_ != Phase::kDeferred) {
    context_.release_exchange(exchange_);
    exchange_ = nullptr;
  }
  in_.release();
  parsed_ = 0;
  ::shutdown(fd_, SHUT_WR);
  phase_ = Phase::kLinger;
  phase_start_ = now_ticks();
  // Bytes that arrived before now bring no new edge: drain them here.
  drain_linger();
}

// Discards input until the peer closes (or the linger timer fires).
void Connection::drain_linger() noexcept {
  char sink[4096];
  for (;;) {
    const ssize_t n = sys::recv(fd_, sink, sizeof sink);
    if (n > 0) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    close();
    return;
  }
}

void Connection::update_interest() noexcept {
  if (closed_) return;
  std::uint32_t want = 0;
  const bool reading = phase_ == Phase::kLinger ||
                       (phase_ != Phase::kDeferred && pending_ == nullptr &&
                        !close_after_write_ && !peer_eof_);
  if (reading) want |= EPOLLIN | EPOLLRDHUP;
  if (pending_ != nullptr) want |= EPOLLOUT;
  if (want != events_) {
    events_ = want;
    if (context_.reactor.modify(fd_, want | kConnectionTrigger, this)) close();
  }
}

std::optional<Ticks> Connection::deadline() const noexcept {
  const ServerOptions& options = context_.core.options();
  std::chrono::milliseconds timeout{0};
  Ticks start = phase_start_;
  if (phase_ == Phase::kLinger) {
    timeout = kLingerTimeout;
  } else if (pending_ != nullptr) {
    timeout = options.write_timeout;
    start = last_active_;
  } else {
    switch (phase_) {
      case Phase::kIdle:
        timeout = options.idle_timeout;
        start = last_active_;
        break;
      case Phase::kHead: timeout = options.header_timeout; break;
      case Phase::kBody: timeout = options.body_timeout; break;
      default: return std::nullopt;
    }
  }
  if (timeout.count() <= 0) return std::nullopt;
  // Timeouts are clamped below 2^30 ms so the wrapping comparison holds.
  return static_cast<Ticks>(start + std::min<std::int64_t>(timeout.count(), INT32_MAX / 2));
}

void Connection::update_timer() noexcept {
  if (closed_) return;
  const auto due = deadline();
  if (!due) {
    context_.reactor.cancel(timer_);
    return;
  }
  // Lazy: a later deadline leaves the armed (earlier) one in place; when it
  // fires, on_timer re-arms for the remainder. No wheel work per request.
  if (!timer_.armed() || ticks_before(*due, armed_deadline_)) {
    armed_deadline_ = *due;
    const auto delay = static_cast<std::int32_t>(*due - now_ticks());
    context_.reactor.arm(timer_, std::chrono::milliseconds(std::max(delay, 0)));
  }
}

void Connection::on_timer(Timer& timer, void* context) noexcept {
  (void)timer;
  auto* self = static_cast<Connection*>(context);
  // A queued read runs later this iteration and re-arms the timer after it.
  if (self->closed_ || self->queued_read_) return;
  const auto due = self->deadline();
  const Ticks now = self->now_ticks();
  if (!due) return;
  if (ticks_before(now, *due)) {
    self->armed_deadline_ = *due;
    self->context_.reactor.arm(self->timer_,
                               std::chrono::milliseconds(static_cast<std::int32_t>(*due - now)));
    return;
  }
  switch (self->phase_) {
    case Phase::kHead:
    case Phase::kBody:
      if (self->pending_ == nullptr) {
        self->fail(408);
        self->flush();
        if (!self->closed_) {
          self->update_interest();
          self->update_timer();
        }
        break;
      }
      [[fallthrough]];
    default:
      // A stalled write or a stalled request counts; an idle keep-alive
      // connection or a lingering close ending is routine.
      if (self->pending_ != nullptr ||
          (self->phase_ != Phase::kLinger && self->phase_ != Phase::kIdle))
        bump(self->context_.counters.timeouts);
      self->close();
      break;
  }
  self->finish_entry();
}

void Connection::close() noexcept {
  if (closed_) return;
  closed_ = true;
  context_.reactor.cancel(timer_);
  (void)context_.reactor.remove(fd_);
  sys::close(fd_);
  fd_ = -1;
  pending_.reset();
  context_.drop_own_output();
  if (exchange_ != nullptr && phase_ != Phase::kDeferred) {
    context_.release_exchange(exchange_);
    exchange_ = nullptr;
  }
  // A deferred exchange still views the input buffer: keep it until then.
  if (exchange_ == nullptr) in_.release();
  if (prev != nullptr) {
    prev->next = next;
  } else {
    context_.connections = next;
  }
  if (next != nullptr) next->prev = prev;
  prev = next = nullptr;
  --context_.connection_count;
  context_.counters.open.store(context_.connection_count, std::memory_order_relaxed);
}

void Connection::finish_entry() noexcept {
  // A closed connection still in a batch is freed by its sent()/received().
  if (!closed_ || exchange_ != nullptr || queued_send_ || queued_read_) return;
  ReactorContext& context = context_;
  context.heap.destroy(this);
  context.maybe_finish_shutdown();
}

std::size_t Connection::format_peer(char* out, std::size_t size) const noexcept {
  char host[INET6_ADDRSTRLEN] = {};
  unsigned port = 0;
  // Asked for rarely (access log, handlers that want it), so the address is
  // not kept: an idle connection stays small.
  sockaddr_storage peer{};
  socklen_t length = sizeof peer;
  if (fd_ < 0 || ::getpeername(fd_, reinterpret_cast<sockaddr*>(&peer), &length) != 0) return 0;
  if (peer.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&peer);
    ::inet_ntop(AF_INET, &v4->sin_addr, host, sizeof host);
    port = ntohs(v4->sin_port);
    const int n = std::snprintf(out, size, "%s:%u", host, port);
    return n > 0 ? std::min(static_cast<std::size_t>(n), size - 1) : 0;
  }
  if (peer.ss_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&peer);
    ::inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof host);
    port = ntohs(v6->sin6_port);
    const int n = std::snprintf(out, size, "[%s]:%u", host, port);
    return n > 0 ? std::min(static_cast<std::size_t>(n), size - 1) : 0;
  }
  return 0;
}

// ---- ServerCore ------------------------------------------------------------------

void ServerCore::replace_routes(Routes table) {
  (void)change_routes([&](Routes& routes) {
    routes = std::move(table);
    return RouteError{};
  });
}

void ServerCore::publish_locked() {
  table_->publish(routes_.impl_->router.freeze());
  // Wake every reactor so it passes a quiescent point soon; the old table is
  // freed by a later publish (or when the server goes).
  for (auto& context : contexts_) (void)context->reactor.try_post([] {});
}

namespace {

std::error_code last_error() noexcept { return {errno, std::system_category()}; }

bool parse_address(const std::string& host, std::uint16_t port, sockaddr_storage& address,
                   socklen_t& length) noexcept {
  address = {};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&address);
  if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    length = sizeof(sockaddr_in);
    return true;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&address);
  std::string bare = host;
  if (bare.size() > 2 && bare.front() == '[' && bare.back() == ']') bare = bare.substr(1, bare.size() - 2);
  if (::inet_pton(AF_INET6, bare.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    length = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

void set_port(sockaddr_storage& address, std::uint16_t port) noexcept {
  if (address.ss_family == AF_INET) {
    reinterpret_cast<sockaddr_in*>(&address)->sin_port = htons(port);
  } else {
    reinterpret_cast<sockaddr_in6*>(&address)->sin6_port = htons(port);
  }
}

int open_listener(const sockaddr_storage& address, socklen_t length, bool reuse_port, int backlog,
                  std::error_code& error) noexcept {
  const int fd = ::socket(address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = last_error();
    return -1;
  }
  const int one = 1;
  (void)::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (reuse_port && ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    error = last_error();
    ::close(fd);
    return -1;
  }
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&address), length) != 0 ||
      ::listen(fd, backlog) != 0) {
    error = last_error();
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

std::error_code ServerCore::start(std::string& message, std::uint16_t& bound_port) {
  if (started_.load(std::memory_order_acquire)) {
    message = "the server was already started";
    return std::make_error_code(std::errc::operation_in_progress);
  }
  const unsigned threads =
      options_.threads != 0 ? options_.threads : std::max(1u, std::thread::hardware_concurrency());
  sockaddr_storage address{};
  socklen_t length = 0;
  if (!parse_address(options_.host, options_.port, address, length)) {
    message = "host '" + options_.host + "' is not an IPv4 or IPv6 address";
    return std::make_error_code(std::errc::invalid_argument);
  }

  // Listeners: one per reactor with SO_REUSEPORT, so the kernel spreads
  // accepts. A fixed port is first probed without SO_REUSEPORT, so another
  // process on it is an error rather than a silent share of its traffic.
  std::vector<int> fds;
  auto close_all = [&fds] {
    for (int fd : fds) ::close(fd);
  };
  std::error_code error;
  if (options_.port != 0 && threads > 1) {
    const int probe = open_listener(address, length, false, 1, error);
    if (probe < 0) {
      message = fmt::format("cannot listen on {}:{}: {}", options_.host, options_.port, error.message());
      return error;
    }
    ::close(probe);
  }
  for (unsigned i = 0; i < threads; ++i) {
    const int fd = open_listener(address, length, threads > 1, options_.backlog, error);
    if (fd < 0) {
      close_all();
      message = fmt::format("cannot listen on {}:{}: {}", options_.host, options_.port, error.message());
      return error;
    }
    fds.push_back(fd);
    if (i == 0) {
      sockaddr_storage bound{};
      socklen_t bound_length = sizeof bound;
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &bound_length);
      const std::uint16_t port =
          ntohs(bound.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&bound)->sin_port
                                           : reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
      set_port(address, port);
      bound_port = port;
    }
  }

  try {
    {
      std::lock_guard lock(routes_mutex_);
      table_ = std::make_unique<RouteTable>(routes_.impl_->router.freeze(), threads + 8);
    }
    for (unsigned i = 0; i < threads; ++i) {
      auto context = std::make_unique<ReactorContext>(*this, options_);
      context->listener.fd = fds[i];
      if (std::error_code add_error = context->reactor.add(fds[i], EPOLLIN, &context->listener)) {
        throw std::system_error(add_error, "epoll_ctl");
      }
      context->reader.emplace(*table_->register_reader());
      contexts_.push_back(std::move(context));
    }
    fds.clear();  // owned by the listeners now
    jobs_ = std::make_unique<MpmcQueue<Exchange*>>(std::max<std::size_t>(2, options_.worker_queue_capacity));
  } catch (const std::exception& e) {
    for (auto& context : contexts_) {
      context->listener.close();
      context->reader.reset();
    }
    contexts_.clear();
    close_all();
    message = std::string("cannot start the server: ") + e.what();
    if (const auto* se = dynamic_cast<const std::system_error*>(&e)) return se->code();
    return std::make_error_code(std::errc::not_enough_memory);
  }

  started_.store(true, std::memory_order_release);
  // With handle_signals, the server's threads never take SIGINT/SIGTERM:
  // run() waits for them on the caller's thread.
  sigset_t previous_mask;
  if (options_.handle_signals) {
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, &previous_mask);
  }
  for (unsigned i = 0; i < std::max(1u, options_.worker_threads); ++i) {
    workers_.emplace_back([this] { worker_main(); });
  }
  running_reactors_.store(static_cast<int>(threads), std::memory_order_release);
  for (auto& context : contexts_) {
    ReactorContext* ctx = context.get();
    ctx->thread = std::thread([ctx] { ctx->thread_main(); });
  }
  if (options_.handle_signals) pthread_sigmask(SIG_SETMASK, &previous_mask, nullptr);
  return {};
}

void ServerCore::worker_main() {
  for (;;) {
    Exchange* ex = nullptr;
    jobs_->pop(ex);
    if (ex == nullptr) return;  // shutdown sentinel
    try {
      ex->route->handler(ex->request, ex->response);
    } catch (...) {
      Exchange::internal_error(ex->response);
    }
    ex->post_completion();
  }
}

void ServerCore::stop() noexcept {
  if (!started_.load(std::memory_order_acquire)) return;
  for (auto& context : contexts_) {
    ReactorContext* ctx = context.get();
    (void)ctx->reactor.post([ctx] { ctx->begin_shutdown(); });
  }
}

void ServerCore::wait() {
  std::lock_guard lock(wait_mutex_);
  if (joined_ || !started_.load(std::memory_order_acquire)) return;
  for (auto& context : contexts_) {
    if (context->thread.joinable()) context->thread.join();
  }
  for (std::size_t i = 0; i < workers_.size(); ++i) jobs_->push(nullptr);
  for (auto& worker : workers_) worker.join();
  workers_.clear();
  for (auto& context : contexts_) context->listener.close();
  if (table_) (void)table_->reclaim();
  joined_ = true;
}

ServerStats ServerCore::stats() const noexcept {
  ServerStats s;
  if (!started_.load(std::memory_order_acquire)) return s;
  for (const auto& context : contexts_) {
    const ReactorStatsCounters& c = context->counters;
    constexpr auto r = std::memory_order_relaxed;
    s.connections_accepted += c.accepted.load(r);
    s.connections_rejected += c.rejected.load(r);
    s.connections_open += c.open.load(r);
    s.requests += c.requests.load(r);
    s.responses_4xx += c.responses_4xx.load(r);
    s.responses_5xx += c.responses_5xx.load(r);
    s.rejected_503 += c.rejected_503.load(r);
    s.timeouts += c.timeouts.load(r);
    s.bad_requests += c.bad_requests.load(r);
  }
  std::lock_guard lock(routes_mutex_);
  s.route_tables_retired = table_ ? table_->pending_reclaim() : 0;
  return s;
}

}  // namespace detail

// ---- public API glue ---------------------------------------------------------------

std::string_view Request::remote_address() const noexcept {
  if (remote_length_ == 0 && connection_ != nullptr) {
    remote_length_ = static_cast<std::uint8_t>(connection_->format_peer(remote_text_, sizeof remote_text_));
  }
  return {remote_text_, remote_length_};
}

Completion Response::defer() noexcept {
  assert(!deferred_);
  deferred_ = true;
  return Completion(exchange_);
}

void Completion::done() noexcept {
  detail::Exchange* ex = std::exchange(exchange_, nullptr);
  assert(ex != nullptr);
  if (ex == nullptr) return;
  ex->post_completion();
}

void Completion::write(std::string_view bytes) {
  detail::Exchange* ex = exchange_;
  assert(ex != nullptr);
  if (ex == nullptr) return;
  ex->context->reactor.post(
      [ex, chunk = std::string(bytes)] { ex->connection->on_stream_write(ex, chunk); });
}

void Completion::abandon() noexcept {
  if (exchange_ == nullptr) return;
  Response& res = exchange_->response;
  res.reset();
  res.deferred_ = true;
  res.status(500);
  done();
}

Server::Server(ServerOptions options)
    : options_(std::move(options)), core_(std::make_unique<detail::ServerCore>(options_)) {}

Server::~Server() { core_->stop_and_wait(); }

Server& Server::keep_error(RouteError error) {
  if (error && !setup_code_) {
    setup_code_ = error.code();
    setup_error_ = error.message();
  }
  return *this;
}

Server& Server::get(std::string_view pattern, Handler handler, RouteOptions route_options) {
  return keep_error(add_route(Method::Get, pattern, std::move(handler), std::move(route_options)));
}
Server& Server::post(std::string_view pattern, Handler handler, RouteOptions route_options) {
  return keep_error(add_route(Method::Post, pattern, std::move(handler), std::move(route_options)));
}
Server& Server::put(std::string_view pattern, Handler handler, RouteOptions route_options) {
  return keep_error(add_route(Method::Put, pattern, std::move(handler), std::move(route_options)));
}
Server& Server::patch(std::string_view pattern, Handler handler, RouteOptions route_options) {
  return keep_error(add_route(Method::Patch, pattern, std::move(handler), std::move(route_options)));
}
Server& Server::del(std::string_view pattern, Handler handler, RouteOptions route_options) {
  return keep_error(add_route(Method::Delete, pattern, std::move(handler), std::move(route_options)));
}
Server& Server::head(std::string_view pattern, Handler handler, RouteOptions route_options) {
  return keep_error(add_route(Method::Head, pattern, std::move(handler), std::move(route_options)));
}
Server& Server::options(std::string_view pattern, Handler handler, RouteOptions route_options) {
  return keep_error(
      add_route(Method::Options, pattern, std::move(handler), std::move(route_options)));
}
Server& Server::any(std::string_view pattern, Handler handler, RouteOptions route_options) {
  return keep_error(core_->change_routes([&](Routes& routes) {
    return routes.add_any(pattern, std::move(handler), std::move(route_options));
  }));
}

RouteError Server::add_route(Method method, std::string_view pattern, Handler handler,
                             RouteOptions route_options) {
  return core_->change_routes([&](Routes& routes) {
    return routes.add(method, pattern, std::move(handler), std::move(route_options));
  });
}

RouteError Server::add_route(std::string_view method_token, std::string_view pattern,
                             Handler handler, RouteOptions route_options) {
  if (method_token == "*") {
    return RouteError(RouteErrc::kBadSyntax, 0, "'*' is not a method token; use any()");
  }
  return core_->change_routes([&](Routes& routes) {
    return routes.add(method_token, pattern, std::move(handler), std::move(route_options));
  });
}

Server& Server::use(Middleware middleware) {
  core_->use(std::move(middleware));
  return *this;
}

void Server::routes(Routes table) { core_->replace_routes(std::move(table)); }

std::error_code Server::start() {
  if (setup_code_) {
    if (setup_error_.empty()) setup_error_ = setup_code_.message();
    return setup_code_;
  }
  std::uint16_t bound = 0;
  std::string message;
  std::error_code error = core_->start(message, bound);
  if (error) {
    setup_error_ = std::move(message);
    return error;
  }
  setup_error_.clear();
  port_.store(bound, std::memory_order_release);
  return {};
}

std::error_code Server::run() {
  std::error_code error;
  if (!core_->started()) error = start();
  if (error) return error;
  if (options_.handle_signals) {
    sigset_t signals;
    sigset_t previous;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    // The server's own threads block these (see start()); blocking them here
    // too routes them to this sigtimedwait.
    pthread_sigmask(SIG_BLOCK, &signals, &previous);
    while (core_->running()) {
      const timespec tick{0, 100 * 1000 * 1000};
      const int signal_number = sigtimedwait(&signals, nullptr, &tick);
      if (signal_number == SIGINT || signal_number == SIGTERM) stop();
    }
    pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  }
  wait();
  return {};
}

void Server::stop() noexcept { core_->stop(); }
void Server::wait() { core_->wait(); }
bool Server::running() const noexcept { return core_->running(); }
ServerStats Server::stats() const noexcept { return core_->stats(); }

}  // namespace v0
}  // namespace portico
