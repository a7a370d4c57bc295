// portico-gateway: the gateway program (GATEWAY.md, "The program"): serves a
// configuration file, checks one (--check), or without --config runs the
// built-in demo (two small upstream services in this process and a gateway
// routing to them by header).
#include <pthread.h>
#include <signal.h>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#if defined(PORTICO_HAVE_MIMALLOC)
#include <mimalloc.h>
#endif

#include "portico/gateway.hpp"
#include "portico/gateway_config.hpp"
#include "portico/server.hpp"

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

// PORTICO_METRICS=off in the environment: no request metrics. A measuring
// knob, not a config key: what the metrics cost (bench/README.md).
void apply_environment(portico::GatewayConfig& config) {
  if (const char* metrics = std::getenv("PORTICO_METRICS");
      metrics != nullptr && std::string_view(metrics) == "off")
    config.metrics = false;
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

// "http://127.0.0.1:8080", "http://[::1]:8080".
std::string http_url(const std::string& host, std::uint16_t port) {
  const bool v6 = host.find(':') != std::string::npos;
  return "http://" + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

// The demo's upstream services: `GET /users/:id` answers
// "users v1: user <id>" (or v2). On a free loopback port, silently.
std::unique_ptr<portico::Server> demo_upstream(std::string_view version) {
  portico::ServerOptions options;
  options.port = 0;
  options.threads = 1;
  options.worker_threads = 1;
  options.handle_signals = false;
  auto server = std::make_unique<portico::Server>(options);
  const std::string who = "users " + std::string(version) + ": user ";
  server->get("/users/:id", [who](portico::Request& req, portico::Response& res) {
    res.text(who + std::string(req.param("id")));
  });
  return server;
}

std::string demo_config(std::uint16_t stable, std::uint16_t canary) {
  return "listen: {host: 127.0.0.1, port: 8080, threads: 1}\n"
         "admin: {host: 127.0.0.1, port: 9901}\n"
         "clusters:\n"
         "  users:\n"
         "    endpoints: [{address: \"127.0.0.1:" + std::to_string(stable) + "\"}]\n"
         "  users-v2:\n"
         "    endpoints: [{address: \"127.0.0.1:" + std::to_string(canary) + "\"}]\n"
         "routes:\n"
         "  - path: /api/users/:id\n"
         "    cluster: users\n"
         "    strip_prefix: /api\n"
         "    canary: [{header: X-Release-Version, value: v2-beta, cluster: users-v2}]\n";
}

int serve(portico::GatewayConfig config, const std::string& config_path, bool demo) {
  const std::string admin_host = config.admin ? config.admin->host : std::string();
  std::unique_ptr<portico::Gateway> gateway;
  try {
    gateway = std::make_unique<portico::Gateway>(std::move(config));
  } catch (const std::exception& error) {
    std::fprintf(stderr, "portico-gateway: %s\n", error.what());
    return 2;
  }
  if (!config_path.empty()) gateway->set_config_path(config_path);
  if (const std::error_code error = gateway->start()) {
    std::fprintf(stderr, "portico-gateway: cannot start: %s\n", gateway->setup_error().c_str());
    return 1;
  }
  const portico::ServerOptions& listen = gateway->server().config();
  std::printf("listening on %s\n", http_url(listen.host, gateway->port()).c_str());
  if (gateway->admin_port() != 0) {
    std::printf("admin on %s\n", http_url(admin_host, gateway->admin_port()).c_str());
  }
  std::fflush(stdout);
  if (demo) {
    const std::string base = http_url(listen.host, gateway->port());
    const std::string admin = http_url(admin_host, gateway->admin_port());
    std::fprintf(stderr,
                 "--- portico-gateway demo: try, from another terminal:\n"
                 "  curl %s/api/users/42\n"
                 "  curl -H 'X-Release-Version: v2-beta' %s/api/users/42\n"
                 "  curl %s/clusters\n"
                 "  curl %s/metrics\n"
                 "and open %s/ in a browser: the status page.\n"
                 "Ctrl-C stops it (in-flight requests finish first).\n",
                 base.c_str(), base.c_str(), admin.c_str(), admin.c_str(), admin.c_str());
  }
  (void)gateway->run();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
#if defined(PORTICO_HAVE_MIMALLOC)
  // mimalloc gives freed memory back to the system after a delay, checked
  // only when the freeing thread allocates again. This program's threads
  // free big configs (load, reload) and scrapes and then sit idle: they
  // would keep that memory for good. It allocates nothing per request, so
  // giving memory back at once costs it only on load and reload.
  mi_option_set(mi_option_decommit_delay, 0);
  mi_option_set(mi_option_segment_decommit_delay, 0);
  mi_option_set(mi_option_decommit_extend_delay, 0);
#endif
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
    if (result.ok()) apply_environment(*result.config);
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
    return serve(std::move(*result.config), *line.config, false);
  }
  // The built-in demo: two upstream services here, and a gateway to them.
  // Their threads must not take the signals Gateway::run() waits for.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  auto stable = demo_upstream("v1");
  auto canary = demo_upstream("v2");
  if (stable->start() || canary->start()) {
    std::fprintf(stderr, "portico-gateway: cannot start the demo's upstreams\n");
    return 1;
  }
  portico::ConfigResult demo =
      portico::GatewayConfig::parse(demo_config(stable->port(), canary->port()), "(demo)");
  if (!demo.ok()) {
    for (const portico::ConfigDiagnostic& error : demo.errors)
      std::fprintf(stderr, "portico-gateway: demo: %s\n", error.to_string().c_str());
    return 1;
  }
  apply_environment(*demo.config);
  apply_overrides(line, *demo.config);
  const int status = serve(std::move(*demo.config), "", true);
  stable->stop();
  canary->stop();
  stable->wait();
  canary->wait();
  return status;
}
