// The libc-backed default syscall table (see portico/detail/syscalls.hpp).
#include "portico/detail/syscalls.hpp"

namespace portico {
inline namespace v0 {
namespace detail {
namespace {

constexpr SyscallTable kDefaults = {
    &::read, &::write, &::recv, &::send, &::sendmsg, &::accept4, &::epoll_wait, &::epoll_ctl, &::close,
};

}  // namespace

constinit SyscallTable g_syscall_table = kDefaults;

const SyscallTable& default_syscalls() noexcept { return kDefaults; }

}  // namespace detail
}  // namespace v0
}  // namespace portico
