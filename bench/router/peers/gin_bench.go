// gin_bench ROUTES REQUESTS [EXPECTED]: gin-gonic/gin's router on a portico
// route table, printing portico-route's --bench line plus
// " rejected=K wrong=W".
//
// gin exposes its trees only through Engine.ServeHTTP, so a lookup is one
// ServeHTTP on a prepared *http.Request with a no-op ResponseWriter: gin takes
// a Context from its pool, matches, and calls the handler, which records the
// route and copies c.Params into a reused slice. Redirects are off and
// HandleMethodNotAllowed is on, so misses answer 404 or 405 as portico-route
// does. gin panics on routes it cannot hold; each add recovers and counts it.
package main

import (
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/gin-gonic/gin"
)

type nullWriter struct{ header http.Header }

func (w *nullWriter) Header() http.Header         { return w.header }
func (w *nullWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nullWriter) WriteHeader(int)             {}

func main() {
	if len(os.Args) < 3 || len(os.Args) > 4 {
		fatalf("usage: gin_bench ROUTES REQUESTS [EXPECTED]")
	}
	gin.SetMode(gin.ReleaseMode)
	gin.DefaultWriter = io.Discard
	gin.DefaultErrorWriter = io.Discard
	routes := readRoutes(os.Args[1])
	reqs := readRequests(os.Args[2])

	status := 0
	matchedRoute := -1
	params := make(gin.Params, 0, 16)
	before := heapBytes()
	start := time.Now()
	engine := gin.New()
	engine.RedirectTrailingSlash = false
	engine.RedirectFixedPath = false
	engine.HandleMethodNotAllowed = true
	engine.NoRoute(func(c *gin.Context) { status = 404; c.Writer.WriteHeaderNow() })
	engine.NoMethod(func(c *gin.Context) { status = 405; c.Writer.WriteHeaderNow() })
	rejected, methods := addAll(routes, func(index int) {
		handler := func(c *gin.Context) {
			status = 200
			matchedRoute = index
			params = append(params[:0], c.Params...)
		}
		engine.Handle(routes[index].method, routes[index].pattern, handler)
	})
	build := time.Since(start)
	memory := heapBytes() - before

	writer := &nullWriter{header: http.Header{}}
	httpReqs := make([]*http.Request, len(reqs))
	for i, r := range reqs {
		httpReqs[i] = &http.Request{Method: r.method, URL: &url.URL{Path: r.path},
			Header: http.Header{}}
	}
	ns, matched := bestPass(len(reqs), func() int {
		n := 0
		for _, r := range httpReqs {
			engine.ServeHTTP(writer, r)
			if status == 200 {
				n++
			}
		}
		return n
	})

	wrong := -1
	if len(os.Args) == 4 {
		got := make([]string, len(reqs))
		for i, r := range httpReqs {
			engine.ServeHTTP(writer, r)
			var values []string
			var route *routeLine
			var allowed []string
			switch status {
			case 200:
				route = &routes[matchedRoute]
				for _, p := range params {
					values = append(values, p.Value)
				}
			case 405:
				// gin 1.8 sends no Allow header: probe the other methods.
				for m := range methods {
					probe := &http.Request{Method: m, URL: r.URL, Header: http.Header{}}
					engine.ServeHTTP(writer, probe)
					if status == 200 {
						allowed = append(allowed, m)
					}
				}
				status = 405
			}
			got[i] = answer(status, route, values, allowed)
		}
		wrong = countWrong(os.Args[3], got)
	}
	report(len(routes), rejected, build, memory, len(reqs), ns, matched, wrong)
}
