// router_httplib: portico's router dispatching for a cpp-httplib server.
//
// cpp-httplib matches routes with std::regex, one pattern after another.
// Here each method gets a single match-everything route whose handler looks
// the path up in a frozen portico table instead: 404 and 405 (with Allow)
// included. (Its pre-routing hook would run before the body is read.)
//
//   router_httplib [PORT]     serve on 127.0.0.1:PORT (default 8080)
//   router_httplib --self-test  serve on an ephemeral port, send a few
//                               requests with httplib::Client, exit 0 if all
//                               answers are right
#include <httplib.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <thread>

#include "portico/router.hpp"

namespace {

// A handler is a plain function: no std::function per request.
using Handler = void (*)(const httplib::Request&, httplib::Response&, const portico::Params&);

void get_user(const httplib::Request&, httplib::Response& res, const portico::Params& params) {
  res.set_content("user " + std::string(params.get("id")) + "\n", "text/plain");
}
void new_user_form(const httplib::Request&, httplib::Response& res, const portico::Params&) {
  res.set_content("new user form\n", "text/plain");
}
void create_user(const httplib::Request& req, httplib::Response& res, const portico::Params&) {
  res.status = 201;
  res.set_content("created " + req.body + "\n", "text/plain");
}
void get_file(const httplib::Request&, httplib::Response& res, const portico::Params& params) {
  // Params are raw; decode before use.
  const auto path = portico::percent_decode(params.get("path"));
  if (!path) {
    res.status = 400;
    return;
  }
  res.set_content("file " + *path + "\n", "text/plain");
}

portico::FrozenRouter<Handler> make_routes() {
  portico::Router<Handler> router;
  bool ok = !router.add(portico::Method::Get, "/users/new", new_user_form) &&
            !router.add(portico::Method::Get, "/users/{id:int}", get_user) &&
            !router.add(portico::Method::Post, "/users", create_user) &&
            !router.add(portico::Method::Get, "/files/*path", get_file);
  if (!ok) std::abort();  // the patterns above are constants
  return std::move(router).freeze();
}

// Answers one request from `table`.
void dispatch(const portico::FrozenRouter<Handler>& table, const httplib::Request& req,
              httplib::Response& res) {
  portico::Params params;
  const auto match = table.match(req.method, req.path, params);
  switch (match.status) {
    case portico::MatchStatus::kFound:
      (*match.handler)(req, res, params);
      break;
    case portico::MatchStatus::kMethodNotAllowed:
      res.status = 405;
      res.set_header("Allow", table.allow_header(match.allowed));
      break;
    case portico::MatchStatus::kNotFound:
      if (match.redirect_trailing_slash) {
        const std::string target = req.path.size() > 1 && req.path.back() == '/'
                                       ? req.path.substr(0, req.path.size() - 1)
                                       : req.path + "/";
        res.set_redirect(target, 308);
      } else {
        res.status = 404;
      }
      break;
  }
}

// Routes every request through `table`: one catch-all per method.
void install(httplib::Server& server, const portico::FrozenRouter<Handler>& table) {
  auto handler = [&table](const httplib::Request& req, httplib::Response& res) {
    dispatch(table, req, res);
  };
  server.Get(".*", handler);
  server.Post(".*", handler);
  server.Put(".*", handler);
  server.Patch(".*", handler);
  server.Delete(".*", handler);
  server.Options(".*", handler);
}

int self_test(const portico::FrozenRouter<Handler>& table) {
  httplib::Server server;
  install(server, table);
  const int port = server.bind_to_any_port("127.0.0.1");
  if (port <= 0) return 1;
  std::thread serving([&] { server.listen_after_bind(); });
  // bind_to_any_port() already listens: requests queue until accept starts.
  httplib::Client client("127.0.0.1", port);
  int failures = 0;
  auto expect = [&](const httplib::Result& r, int status, std::string_view body) {
    if (!r || r->status != status || (!body.empty() && r->body != body)) {
      std::fprintf(stderr, "unexpected answer: %d %s\n", r ? r->status : -1,
                   r ? r->body.c_str() : "(no response)");
      ++failures;
    }
  };
  expect(client.Get("/users/42"), 200, "user 42\n");
  expect(client.Get("/users/new"), 200, "new user form\n");
  expect(client.Post("/users", "ada", "text/plain"), 201, "created ada\n");
  expect(client.Get("/files/a%20b/c.txt"), 200, "file a b/c.txt\n");
  expect(client.Get("/users/x"), 404, "");
  auto not_allowed = client.Delete("/users/42");
  expect(not_allowed, 405, "");
  if (not_allowed && not_allowed->get_header_value("Allow") != "GET") ++failures;
  server.stop();
  serving.join();
  std::printf("%s\n", failures == 0 ? "self-test passed" : "self-test FAILED");
  return failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const auto table = make_routes();
  if (argc > 1 && std::string_view(argv[1]) == "--self-test") return self_test(table);
  const int port = argc > 1 ? std::atoi(argv[1]) : 8080;
  httplib::Server server;
  install(server, table);
  std::printf("listening on 127.0.0.1:%d\n", port);
  return server.listen("127.0.0.1", port) ? 0 : 1;
}
