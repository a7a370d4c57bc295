// Links portico::router alone; exits 0 only if routes match as expected and
// a Published<T> (which a router-only user gets too) hands out its snapshot.
#include <portico/published.hpp>
#include <portico/router.hpp>
#include <portico/version.hpp>

#include <cstdio>
#include <string>

int main() {
  portico::Router<int> router;
  if (router.add(portico::Method::Get, "/users/:id", 1)) return 1;
  if (router.add(portico::Method::Get, "/users/new", 2)) return 1;
  const auto table = router.freeze();
  portico::Params params;
  const auto found = table.match(portico::Method::Get, "/users/42", params);
  if (!found || *found.handler != 1 || params.get("id") != "42") return 1;
  const auto fixed = table.match(portico::Method::Get, "/users/new", params);
  if (!fixed || *fixed.handler != 2) return 1;
  const auto wrong = table.match(portico::Method::Post, "/users/42", params);
  if (wrong.status != portico::MatchStatus::kMethodNotAllowed) return 1;
  portico::Published<std::string> greeting(std::string("hello"), 1);
  auto reader = greeting.register_reader();
  if (!reader || reader->snapshot() != "hello") return 1;
  greeting.publish(std::string("bye"));
  reader->quiescent();
  if (reader->snapshot() != "bye" || greeting.reclaim() != 0) return 1;
  reader.reset();
  std::printf("portico %s router consumer: ok\n", PORTICO_VERSION_STRING);
  return 0;
}
