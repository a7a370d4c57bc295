// portico-gateway: the gateway program (GATEWAY.md, "The program"). Today it
// parses its command line strictly and checks a configuration (--check);
// serving comes next.
#include <charconv>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

#include "portico/gateway_config.hpp"

namespace {

constexpr std::string_view kUsage =
    "usage: portico-gateway [--config FILE] [--check] [--host ADDR] [--port N]\n"
    "                       [--admin-port N] [--threads N]\n";

struct CommandLine {
  std::optional<std::string> config;
  bool check = false;
  std::optional<std::string> host;
  std::optional<std::uint16_t> port;
  std::optional<std::uint16_t> admin_port;
  std::optional<unsigned> threads;
};

bool parse_number(std::string_view text, unsigned max, unsigned& out) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return !text.empty() && ec == std::errc{} && end == text.data() + text.size() && out <= max;
}

// Fills `out`, or says what is wrong with the command line.
std::optional<std::string> parse_command_line(int argc, char** argv, CommandLine& out) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--check") {
      out.check = true;
      continue;
    }
    // Every other flag takes a value: "--flag VALUE" or "--flag=VALUE".
    std::string_view value;
    const std::size_t equals = arg.find('=');
    if (arg.starts_with("--") && equals != std::string_view::npos) {
      value = arg.substr(equals + 1);
      arg = arg.substr(0, equals);
    } else if (arg == "--config" || arg == "--host" || arg == "--port" || arg == "--admin-port" ||
               arg == "--threads") {
      if (i + 1 == argc) return std::string(arg) + " needs a value";
      value = argv[++i];
    } else {
      return "unknown argument " + std::string(arg);
    }
    unsigned number = 0;
    if (arg == "--config") {
      if (value.empty()) return "--config needs a file";
      out.config = std::string(value);
    } else if (arg == "--host") {
      if (value.empty()) return "--host needs an address";
      out.host = std::string(value);
    } else if (arg == "--port" || arg == "--admin-port") {
      if (!parse_number(value, 65535, number)) {
        return std::string(arg) + " takes a port from 0 to 65535, not \"" + std::string(value) +
               "\"";
      }
      (arg == "--port" ? out.port : out.admin_port) = static_cast<std::uint16_t>(number);
    } else if (arg == "--threads") {
      if (!parse_number(value, 1024, number)) {
        return "--threads takes a number from 0 to 1024, not \"" + std::string(value) + "\"";
      }
      out.threads = number;
    } else {
      return "unknown argument " + std::string(arg);
    }
  }
  if (out.check && !out.config) return "--check needs --config FILE";
  return std::nullopt;
}

void apply_overrides(const CommandLine& line, portico::GatewayConfig& config) {
  if (line.host) config.listen.host = *line.host;
  if (line.port) config.listen.port = *line.port;
  if (line.threads) config.listen.threads = *line.threads;
  if (line.admin_port) {
    if (!config.admin) config.admin.emplace();
    config.admin->port = *line.admin_port;
  }
}

}  // namespace

int main(int argc, char** argv) {
  CommandLine line;
  if (argc == 2 && (std::string_view(argv[1]) == "--help" || std::string_view(argv[1]) == "-h")) {
    std::fputs(kUsage.data(), stdout);
    return 0;
  }
  if (auto problem = parse_command_line(argc, argv, line)) {
    std::fprintf(stderr, "portico-gateway: %s\n%s", problem->c_str(), kUsage.data());
    return 2;
  }
  if (line.config) {
    portico::ConfigResult result = portico::GatewayConfig::load(*line.config);
    for (const portico::ConfigDiagnostic& notice : result.notices) {
      std::fprintf(stderr, "%s\n", notice.to_string().c_str());
    }
    const bool overridden = line.host || line.port || line.admin_port || line.threads;
    if (result.ok() && overridden) {
      apply_overrides(line, *result.config);
      // The flags are checked like the file (a --host that is no address).
      bool bad_flag = false;
      for (const portico::ConfigDiagnostic& error : result.config->validate()) {
        std::fprintf(stderr, "portico-gateway: %s\n", error.to_string().c_str());
        bad_flag = true;
      }
      if (bad_flag) return 2;
    }
    if (!result.ok()) {
      for (const portico::ConfigDiagnostic& error : result.errors) {
        std::fprintf(stderr, "%s\n", error.to_string().c_str());
      }
      return 2;
    }
    if (line.check) {
      std::fputs("ok\n", stdout);
      return 0;
    }
  }
  std::fputs("portico-gateway: serving is not built yet\n", stderr);
  return 1;
}
