// The libc-backed default syscall table (see portico/detail/syscalls.hpp).
#include "portico/detail/syscalls.hpp"

namespace portico {
inline namespace v0 {
namespace detail {
namespace {

constexpr SyscallTable kDefaults = {
    .read = &::read,
    .write = &::write,
    .recv = &::recv,
    .send = &::send,
    .sendmsg = &::sendmsg,
    .accept4 = &::accept4,
    .epoll_create1 = &::epoll_create1,
    .epoll_wait = &::epoll_wait,
    .epoll_ctl = &::epoll_ctl,
    .close = &::close,
    .socket = &::socket,
    .bind = &::bind,
    .listen = &::listen,
    .setsockopt = &::setsockopt,
    .getsockopt = &::getsockopt,
    .connect = &::connect,
    .shutdown = &::shutdown,
    .getpeername = &::getpeername,
    .getsockname = &::getsockname,
};

}  // namespace

constinit SyscallTable g_syscall_table = kDefaults;

const SyscallTable& default_syscalls() noexcept { return kDefaults; }

}  // namespace detail
}  // namespace v0
}  // namespace portico
