// portico/detail/syscalls.hpp — the one thin seam every socket and epoll
// syscall of the reactor and the server goes through. EINTR is retried here
// and nowhere else. Tests replace entries of syscall_table() to inject EINTR,
// EAGAIN, EMFILE or short writes.
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
  int (*epoll_wait)(int epfd, epoll_event* events, int maxevents, int timeout);
  int (*epoll_ctl)(int epfd, int op, int fd, epoll_event* event);
  int (*close)(int fd);
};

// The live table; defaults to the libc functions (constant-initialised in
// src/net/syscalls.cpp, so it is usable before main and costs no guard).
extern SyscallTable g_syscall_table;
inline SyscallTable& syscall_table() noexcept { return g_syscall_table; }
// The libc functions, for tests to restore the table or to wrap them.
const SyscallTable& default_syscalls() noexcept;

namespace sys {

// Each returns what the syscall returns, with errno set; EINTR never escapes
// (except from epoll_wait, whose caller recomputes its timeout: it returns 0).
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
inline int epoll_wait(int epfd, epoll_event* events, int maxevents, int timeout) noexcept {
  const int r = syscall_table().epoll_wait(epfd, events, maxevents, timeout);
  return (r < 0 && errno == EINTR) ? 0 : r;
}
inline int epoll_ctl(int epfd, int op, int fd, epoll_event* event) noexcept {
  return syscall_table().epoll_ctl(epfd, op, fd, event);
}
// close() is not retried on EINTR: on Linux the fd is released either way.
inline int close(int fd) noexcept { return syscall_table().close(fd); }

}  // namespace sys
}  // namespace detail
}  // namespace v0
}  // namespace portico
