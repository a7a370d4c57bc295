// gateway/config_loader.hpp — the YAML loader behind GatewayConfig::parse,
// with the endpoint-name resolver as a parameter so tests and the fuzzer can
// resolve without DNS.
// Thread-safety: reentrant; the resolver must be too.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "portico/gateway_config.hpp"

namespace portico {
inline namespace v0 {
namespace detail {

// The addresses (IP literals, no brackets) a host name resolves to, or an
// empty list and `error` set.
using EndpointResolver = std::vector<std::string> (*)(const std::string& host, std::string& error);

// getaddrinfo(3) for TCP, every address once, in the order it returns them.
std::vector<std::string> resolve_with_getaddrinfo(const std::string& host, std::string& error);

ConfigResult parse_gateway_config(std::string_view text, std::string_view name,
                                  EndpointResolver resolve);

}  // namespace detail
}  // namespace v0
}  // namespace portico
