// httprouter_bench ROUTES REQUESTS [EXPECTED]: julienschmidt/httprouter on a
// portico route table, printing portico-route's --bench line plus
// " rejected=K wrong=W".
//
// Per lookup it does what portico-route does: Lookup(method, path), call the
// handle (it records the route), copy the params into a reused slice; on a
// miss it looks the path up under the table's other methods to build the 405
// allowed set, like httprouter's own HandleMethodNotAllowed does.
// httprouter panics on a route it cannot hold (a static sibling of a param, a
// catch-all beside other routes); each add recovers and counts it rejected.
package main

import (
	"net/http"
	"os"
	"time"

	"github.com/julienschmidt/httprouter"
)

func main() {
	if len(os.Args) < 3 || len(os.Args) > 4 {
		fatalf("usage: httprouter_bench ROUTES REQUESTS [EXPECTED]")
	}
	routes := readRoutes(os.Args[1])
	reqs := readRequests(os.Args[2])

	matchedRoute := -1
	before := heapBytes()
	start := time.Now()
	router := httprouter.New()
	rejected, methods := addAll(routes, func(index int) {
		handle := func(http.ResponseWriter, *http.Request, httprouter.Params) { matchedRoute = index }
		router.Handle(routes[index].method, routes[index].pattern, handle)
	})
	build := time.Since(start)
	memory := heapBytes() - before
	var methodList []string
	for m := range methods {
		methodList = append(methodList, m)
	}

	params := make([]httprouter.Param, 0, 16)
	allowed := make([]string, 0, 16)
	lookup := func(r *requestLine) int {
		if h, ps, _ := router.Lookup(r.method, r.path); h != nil {
			h(nil, nil, ps)
			params = append(params[:0], ps...)
			return 200
		}
		allowed = allowed[:0]
		for _, m := range methodList {
			if m == r.method {
				continue
			}
			if h, _, _ := router.Lookup(m, r.path); h != nil {
				allowed = append(allowed, m)
			}
		}
		if len(allowed) > 0 {
			return 405
		}
		return 404
	}
	ns, matched := bestPass(len(reqs), func() int {
		n := 0
		for i := range reqs {
			if lookup(&reqs[i]) == 200 {
				n++
			}
		}
		return n
	})

	wrong := -1
	if len(os.Args) == 4 {
		got := make([]string, len(reqs))
		for i := range reqs {
			status := lookup(&reqs[i])
			var values []string
			var r *routeLine
			if status == 200 {
				r = &routes[matchedRoute]
				for _, p := range params {
					values = append(values, p.Value)
				}
			}
			got[i] = answer(status, r, values, allowed)
		}
		wrong = countWrong(os.Args[3], got)
	}
	report(len(routes), rejected, build, memory, len(reqs), ns, matched, wrong)
}
