package minjson

import (
	"fmt"
	"math"
	"slices"
	"strconv"
)

// Node is a place in a tree from Decode: the value there (if any) and the
// path that leads to it, such as "keyslots.0.kdf.salt".
//
// Accessors never fail out loud: the first problem met anywhere in the tree
// is recorded, with its path, in state all Nodes from the same Root share, and
// every accessor returns the zero value from then on. A reader fetches all the
// fields it wants and checks Err once:
//
//	root := minjson.Root(v)
//	size := root.Key("config").Key("json_size").Str()
//	cpus := root.Key("kdf").Opt("cpus").Int()
//	if err := root.Err(); err != nil { ... } // "kdf.cpus: expected an integer, found 1.5"
//
// A Node from Key is required: if it is missing or null, reading it is an
// error. A Node from Opt is optional: missing or null reads as the zero value,
// as encoding/json leaves a struct field untouched for a missing key or null;
// so does everything below a missing optional Node.
type Node struct {
	st   *walk
	path string
	v    any
	has  bool // the value exists (a member present, an element, the root)
	opt  bool // missing or null reads as the zero value
}

type walk struct{ err error }

// Root starts a walk over v, a value from Decode; the root is required.
func Root(v any) Node { return Node{st: &walk{}, v: v, has: true} }

// Err is the first problem met in the walk n belongs to, nil if none.
func (n Node) Err() error { return n.st.err }

// Path is where n is, members and elements joined with '.'; "" at the top.
func (n Node) Path() string { return n.path }

// Value is the decoded value at n; nil if missing or null.
func (n Node) Value() any { return n.v }

// Present tells whether n exists and is not null.
func (n Node) Present() bool { return n.has && n.v != nil }

// Failf records a problem with n, prefixed with its path, unless a problem
// was recorded already. Readers use it for checks of their own.
func (n Node) Failf(format string, args ...any) {
	if n.st.err == nil {
		where := n.path
		if where == "" {
			where = "top level"
		}
		n.st.err = fmt.Errorf("%s: %s", where, fmt.Sprintf(format, args...))
	}
}

// Key is the required member name of object n.
func (n Node) Key(name string) Node { return n.member(name, false) }

// Opt is the optional member name of object n.
func (n Node) Opt(name string) Node { return n.member(name, true) }

func (n Node) member(name string, opt bool) Node {
	c := Node{st: n.st, path: name, opt: opt}
	if n.path != "" {
		c.path = n.path + "." + name
	}
	v, ok := n.get("an object")
	if !ok {
		c.opt = true // the problem, if any, is n's
		return c
	}
	m, ok := v.(map[string]any)
	if !ok {
		n.wrongType("an object")
		c.opt = true
		return c
	}
	c.v, c.has = m[name]
	return c
}

// Keys is the member names of object n, sorted (bytewise); nil if n is
// missing or null.
func (n Node) Keys() []string {
	v, ok := n.get("an object")
	if !ok {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		n.wrongType("an object")
		return nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Items is the elements of array n, each required; nil if n is missing or
// null, empty (not nil) for [].
func (n Node) Items() []Node {
	v, ok := n.get("an array")
	if !ok {
		return nil
	}
	a, ok := v.([]any)
	if !ok {
		n.wrongType("an array")
		return nil
	}
	items := make([]Node, len(a))
	for i, e := range a {
		p := strconv.Itoa(i)
		if n.path != "" {
			p = n.path + "." + p
		}
		items[i] = Node{st: n.st, path: p, v: e, has: true}
	}
	return items
}

// Strings is array n of strings; nil if n is missing or null, empty (not
// nil) for [].
func (n Node) Strings() []string {
	items := n.Items()
	if items == nil {
		return nil
	}
	out := make([]string, 0, len(items))
	for _, s := range items {
		out = append(out, s.Str())
	}
	return out
}

// Str is string n.
func (n Node) Str() string {
	v, ok := n.get("a string")
	if !ok {
		return ""
	}
	s, ok := v.(string)
	if !ok {
		n.wrongType("a string")
	}
	return s
}

// Bool is boolean n.
func (n Node) Bool() bool {
	v, ok := n.get("a boolean")
	if !ok {
		return false
	}
	b, ok := v.(bool)
	if !ok {
		n.wrongType("a boolean")
	}
	return b
}

// Float is number n.
func (n Node) Float() float64 {
	v, ok := n.get("a number")
	if !ok {
		return 0
	}
	f, ok := v.(float64)
	if !ok {
		n.wrongType("a number")
	}
	return f
}

// maxExact is the largest integer below which every integer written in JSON
// decodes to exactly its own value as a float64 (2^53 - 1).
const maxExact = 1<<53 - 1

// Int is number n, which must be a whole number of magnitude at most 2^53-1
// (so that it was decoded exactly) that fits an int.
func (n Node) Int() int {
	v, ok := n.get("an integer")
	if !ok {
		return 0
	}
	f, ok := v.(float64)
	if !ok {
		n.wrongType("an integer")
		return 0
	}
	found := strconv.FormatFloat(f, 'g', -1, 64)
	if f != math.Trunc(f) {
		n.Failf("expected an integer, found %s", found)
		return 0
	}
	if math.Abs(f) > maxExact || f < math.MinInt || f > math.MaxInt {
		n.Failf("expected an integer of at most %d in magnitude, found %s", int64(min(maxExact, math.MaxInt)), found)
		return 0
	}
	return int(f)
}

// get is n's value if there is one to read; false if there is none, after
// recording a problem unless n is optional.
func (n Node) get(want string) (any, bool) {
	if n.st.err != nil {
		return nil, false
	}
	if n.has && n.v != nil {
		return n.v, true
	}
	switch {
	case n.opt:
	case !n.has:
		n.Failf("missing, expected %s", want)
	default:
		n.Failf("expected %s, found null", want)
	}
	return nil, false
}

func (n Node) wrongType(want string) { n.Failf("expected %s, found %s", want, Kind(n.v)) }

// Kind names the JSON type of a value from Decode: "object", "array",
// "string", "number", "boolean" or "null".
func Kind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T (not from Decode)", v)
}
