// Links portico::gateway alone; exits 0 only if a config loads and a bad one
// is refused at its line and column.
#include <portico/gateway_config.hpp>

#include <cstdio>

int main() {
  const portico::ConfigResult good = portico::GatewayConfig::parse(
      "clusters:\n  users: {endpoints: [{address: \"127.0.0.1:9001\"}]}\n"
      "routes:\n  - {path: /users/:id, cluster: users}\n",
      "good.yaml");
  if (!good.ok() || good.config->routes.size() != 1) return 1;
  const portico::ConfigResult bad =
      portico::GatewayConfig::parse("listen: {port: x}\n", "bad.yaml");
  if (bad.ok() || bad.errors.size() != 1 || bad.errors[0].line != 1 || bad.errors[0].column != 16) {
    return 1;
  }
  std::puts("gateway_consumer: ok");
  return 0;
}
