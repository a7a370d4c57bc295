// libFuzzer target: arbitrary bytes into the gateway's config loader
// (GatewayConfig::parse without DNS). It must never crash, and what it
// returns must hold together: a config exactly when there is no error, every
// error at a line and column of this file, in file order, and a config it
// accepted passes validate() (the loader and validate() agree).
#include <portico/gateway_config.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/config_loader.hpp"

namespace {

// Deterministic and offline: names starting with "x" do not resolve, others
// resolve to two documentation addresses.
std::vector<std::string> resolve(const std::string& host, std::string& error) {
  if (host.starts_with('x')) {
    error = "not found";
    return {};
  }
  return {"192.0.2.1", "2001:db8::1"};
}

void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "gateway_config_fuzz: %s: %s\n", what, detail.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const portico::ConfigResult result =
      portico::detail::parse_gateway_config(text, "f.yaml", resolve);
  if (result.ok() != result.config.has_value()) fail("config iff no error", "");
  std::uint32_t line = 0;
  std::uint32_t column = 0;
  for (const portico::ConfigDiagnostic& e : result.errors) {
    if (e.file != "f.yaml" || e.line == 0 || e.column == 0)
      fail("error without a position", e.to_string());
    if (e.line < line || (e.line == line && e.column < column))
      fail("errors out of order", e.to_string());
    line = e.line;
    column = e.column;
  }
  if (result.config) {
    const std::vector<portico::ConfigDiagnostic> errors = result.config->validate();
    if (!errors.empty()) fail("loaded, but validate() refuses", errors[0].to_string());
  }
  return 0;
}
