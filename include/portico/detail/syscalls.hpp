// portico/detail/syscalls.hpp — the one thin seam every system call of
// portico::server goes through: sockets, epoll, reads and writes. (Not
// liburing's own calls, and not the task queue's eventfd, which belongs to
// portico::core.) EINTR is retried here and nowhere else, where retrying is
// meaningful. Tests replace entries of syscall_table() to inject EINTR,
// EAGAIN, EMFILE, EADDRINUSE, resets or short writes.
// Thread-safety: the table is read by every reactor thread; replace entries
// only while no reactor runs (before start, after join).
#pragma once

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>

namespace portico {
inline namespace v0 {
namespace detail {

// Sockets are read and written with recv/send/sendmsg rather than
// read/write/writev: they skip the VFS layer (fdget_pos, rw_verify_area,
// fsnotify) on every call, which is measurable on a keep-alive request that
// costs one read and one write. read/write remain for eventfds and files.
struct SyscallTable {
  ssize_t (*read)(int fd, void* buf, size_t count);
  ssize_t (*write)(int fd, const void* buf, size_t count);
  ssize_t (*recv)(int fd, void* buf, size_t count, int flags);
  ssize_t (*send)(int fd, const void* buf, size_t count, int flags);
  ssize_t (*sendmsg)(int fd, const msghdr* message, int flags);
  int (*accept4)(int fd, sockaddr* addr, socklen_t* addrlen, int flags);
  int (*epoll_create1)(int flags);
  int (*epoll_wait)(int epfd, epoll_event* events, int maxevents, int timeout);
  int (*epoll_ctl)(int epfd, int op, int fd, epoll_event* event);
  int (*close)(int fd);
  int (*socket)(int domain, int type, int protocol);
  int (*bind)(int fd, const sockaddr* addr, socklen_t addrlen);
  int (*listen)(int fd, int backlog);
  int (*setsockopt)(int fd, int level, int name, const void* value, socklen_t length);
  int (*getsockopt)(int fd, int level, int name, void* value, socklen_t* length);
  int (*connect)(int fd, const sockaddr* addr, socklen_t addrlen);
  int (*shutdown)(int fd, int how);
  int (*getpeername)(int fd, sockaddr* addr, socklen_t* addrlen);
  int (*getsockname)(int fd, sockaddr* addr, socklen_t* addrlen);
};

// The live table; defaults to the libc functions (constant-initialised in
// src/net/syscalls.cpp, so it is usable before main and costs no guard).
extern SyscallTable g_syscall_table;
inline SyscallTable& syscall_table() noexcept { return g_syscall_table; }
// The libc functions, for tests to restore the table or to wrap them.
const SyscallTable& default_syscalls() noexcept;

namespace sys {

// Each returns what the syscall returns, with errno set. EINTR never escapes
// from a call that can be interrupted, except from epoll_wait (it returns 0:
// its caller recomputes the timeout) and connect (see there).
inline ssize_t read(int fd, void* buf, size_t count) noexcept {
  ssize_t r;
  do r = syscall_table().read(fd, buf, count);
  while (r < 0 && errno == EINTR);
  return r;
}
inline ssize_t write(int fd, const void* buf, size_t count) noexcept {
  ssize_t r;
  do r = syscall_table().write(fd, buf, count);
  while (r < 0 && errno == EINTR);
  return r;
}
inline ssize_t recv(int fd, void* buf, size_t count) noexcept {
  ssize_t r;
  do r = syscall_table().recv(fd, buf, count, 0);
  while (r < 0 && errno == EINTR);
  return r;
}
// MSG_NOSIGNAL: a peer that reset the connection yields EPIPE, not SIGPIPE.
inline ssize_t send(int fd, const void* buf, size_t count) noexcept {
  ssize_t r;
  do r = syscall_table().send(fd, buf, count, MSG_NOSIGNAL);
  while (r < 0 && errno == EINTR);
  return r;
}
// writev for a socket: sendmsg with MSG_NOSIGNAL.
inline ssize_t sendv(int fd, const iovec* iov, int iovcnt) noexcept {
  msghdr message{};
  message.msg_iov = const_cast<iovec*>(iov);
  message.msg_iovlen = static_cast<decltype(message.msg_iovlen)>(iovcnt);
  ssize_t r;
  do r = syscall_table().sendmsg(fd, &message, MSG_NOSIGNAL);
  while (r < 0 && errno == EINTR);
  return r;
}
inline int accept4(int fd, sockaddr* addr, socklen_t* addrlen, int flags) noexcept {
  int r;
  do r = syscall_table().accept4(fd, addr, addrlen, flags);
  while (r < 0 && errno == EINTR);
  return r;
}
inline int epoll_create1(int flags) noexcept { return syscall_table().epoll_create1(flags); }
inline int epoll_wait(int epfd, epoll_event* events, int maxevents, int timeout) noexcept {
  const int r = syscall_table().epoll_wait(epfd, events, maxevents, timeout);
  return (r < 0 && errno == EINTR) ? 0 : r;
}
inline int epoll_ctl(int epfd, int op, int fd, epoll_event* event) noexcept {
  return syscall_table().epoll_ctl(epfd, op, fd, event);
}
// close() is not retried on EINTR: on Linux the fd is released either way.
inline int close(int fd) noexcept { return syscall_table().close(fd); }

// Socket set-up. None of these blocks, and Linux does not interrupt them, so
// there is no EINTR to retry; they pass straight through.
inline int socket(int domain, int type, int protocol) noexcept {
  return syscall_table().socket(domain, type, protocol);
}
inline int bind(int fd, const sockaddr* addr, socklen_t addrlen) noexcept {
  return syscall_table().bind(fd, addr, addrlen);
}
inline int listen(int fd, int backlog) noexcept { return syscall_table().listen(fd, backlog); }
inline int setsockopt(int fd, int level, int name, const void* value, socklen_t length) noexcept {
  return syscall_table().setsockopt(fd, level, name, value, length);
}
inline int getsockopt(int fd, int level, int name, void* value, socklen_t* length) noexcept {
  return syscall_table().getsockopt(fd, level, name, value, length);
}
// connect() is never retried: EINTR means the connection attempt goes on in
// the background (as EINPROGRESS does on a non-blocking socket); calling it
// again would give EALREADY. The caller waits for writability and reads
// SO_ERROR (getsockopt), in both cases.
inline int connect(int fd, const sockaddr* addr, socklen_t addrlen) noexcept {
  return syscall_table().connect(fd, addr, addrlen);
}
inline int shutdown(int fd, int how) noexcept { return syscall_table().shutdown(fd, how); }
inline int getpeername(int fd, sockaddr* addr, socklen_t* addrlen) noexcept {
  return syscall_table().getpeername(fd, addr, addrlen);
}
inline int getsockname(int fd, sockaddr* addr, socklen_t* addrlen) noexcept {
  return syscall_table().getsockname(fd, addr, addrlen);
}

}  // namespace sys
}  // namespace detail
}  // namespace v0
}  // namespace portico
