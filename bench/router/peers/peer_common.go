// Shared by httprouter_bench.go and gin_bench.go (each is built together with
// this file, GOPATH mode, from Debian's Go packages): reading the tables,
// timing the passes and printing the one result line in portico-route's
// --bench format plus " rejected=K wrong=W".
package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"time"
)

type routeLine struct {
	method  string
	pattern string
	names   []string // param names in order
	catches []bool   // names[i] is a catch-all: its value loses the leading '/'
}

type requestLine struct {
	method string
	path   string // without ?query and #fragment
}

func fatalf(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(2)
}

func readLines(name string) []string {
	f, err := os.Open(name)
	if err != nil {
		fatalf("%v", err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

func readRoutes(name string) []routeLine {
	var routes []routeLine
	for _, line := range readLines(name) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			fatalf("%s: bad route line %q", name, line)
		}
		r := routeLine{method: f[0], pattern: f[1]}
		for _, seg := range strings.Split(f[1], "/") {
			if strings.HasPrefix(seg, ":") || strings.HasPrefix(seg, "*") {
				r.names = append(r.names, seg[1:])
				r.catches = append(r.catches, seg[0] == '*')
			}
		}
		routes = append(routes, r)
	}
	return routes
}

func readRequests(name string) []requestLine {
	var reqs []requestLine
	for _, line := range readLines(name) {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		path := f[1]
		if i := strings.IndexAny(path, "?#"); i >= 0 {
			path = path[:i]
		}
		reqs = append(reqs, requestLine{method: f[0], path: path})
	}
	return reqs
}

// heapBytes is the live heap after a full collection.
func heapBytes() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// answer formats one result the way portico-route prints it.
func answer(status int, r *routeLine, values []string, allowed []string) string {
	switch status {
	case 200:
		var b strings.Builder
		b.WriteString("200 ")
		b.WriteString(r.pattern)
		for i, v := range values {
			name := "?"
			if i < len(r.names) {
				name = r.names[i]
				if r.catches[i] {
					v = strings.TrimPrefix(v, "/")
				}
			}
			b.WriteString(" " + name + "=" + v)
		}
		return b.String()
	case 405:
		s := append([]string(nil), allowed...)
		sort.Strings(s)
		return "405 " + strings.Join(s, ",")
	}
	return "404"
}

// countWrong compares answers against the expected file (if given).
func countWrong(expectedFile string, got []string) int {
	if expectedFile == "" {
		return -1
	}
	want := readLines(expectedFile)
	wrong := 0
	shown := 0
	for i, g := range got {
		if i >= len(want) || want[i] != g {
			wrong++
			if shown < showLimit() {
				w := "<none>"
				if i < len(want) {
					w = want[i]
				}
				fmt.Fprintf(os.Stderr, "wrong: line %d: got %q want %q\n", i+1, g, w)
				shown++
			}
		}
	}
	return wrong
}

// bestPass runs one warm-up pass, then 5 timed passes; it returns the best
// pass's ns per lookup and the number of matched requests in a pass.
func bestPass(n int, pass func() int) (float64, int) {
	if name := os.Getenv("PEER_CPUPROFILE"); name != "" {
		f, err := os.Create(name)
		if err != nil {
			fatalf("%v", err)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	matched := pass()
	best := time.Duration(1<<63 - 1)
	for i := 0; i < 5; i++ {
		start := time.Now()
		matched = pass()
		if d := time.Since(start); d < best {
			best = d
		}
	}
	return float64(best.Nanoseconds()) / float64(n), matched
}

func report(routes, rejected int, build time.Duration, memory uint64, requests int,
	ns float64, matched, wrong int) {
	fmt.Printf("routes=%d build_ms=%.2f memory_bytes=%d requests=%d ns_per_lookup=%.1f matched=%d rejected=%d wrong=%d\n",
		routes, float64(build.Nanoseconds())/1e6, memory, requests, ns, matched, rejected, wrong)
}

// showLimit is how many wrong answers to print on stderr: PEER_SHOW_WRONG=N
// (unset: none; set but not a number: 3).
func showLimit() int {
	v := os.Getenv("PEER_SHOW_WRONG")
	if v == "" {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 3
	}
	return n
}

// addAll offers every route to add, which registers route i with the peer.
// A peer that refuses a route panics (httprouter and gin do on conflicts):
// the panic is recovered and the route counted as rejected. Returns the
// rejected count and the methods of the accepted routes.
func addAll(routes []routeLine, add func(i int)) (int, map[string]bool) {
	rejected := 0
	methods := map[string]bool{}
	for i := range routes {
		ok := func() (ok bool) {
			defer func() {
				if recover() != nil {
					ok = false
				}
			}()
			add(i)
			return true
		}()
		if ok {
			methods[routes[i].method] = true
		} else {
			rejected++
		}
	}
	return rejected, methods
}
