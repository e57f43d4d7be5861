// SPDX-License-Identifier: Apache-2.0

package minjson

import (
	"encoding/base64"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
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
//
// Has tells a member left out from one given as null, for members that may
// be left out but must be valid when given. Detach starts a walk of its own
// for a part whose problems are not the whole's.
type Node struct{ *node }

// node is what a Node holds. A Node is a pointer to it so that Nodes, passed
// and returned by value at every read, cost a word to copy: copying the
// six-word struct at each of the readers' hundreds of calls cost the init
// kilobytes of code.
type node struct {
	st   *walk
	path string
	v    any
	has  bool // the value exists (a member present, an element, the root)
	opt  bool // missing or null reads as the zero value
}

type walk struct{ err error }

// Root starts a walk over v, a value from Decode; the root is required.
func Root(v any) Node { return Node{&node{st: &walk{}, v: v, has: true}} }

// Detach is n in a walk of its own: a problem met reading n or anything
// below it is recorded in the new walk's Err only, and every Node reached
// from n's walk reads on as before. A reader uses it for a part of a
// document that may be bad without the whole being bad, such as one of
// several key slots.
func (n Node) Detach() Node {
	c := *n.node
	c.st = &walk{}
	return Node{&c}
}

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
	c := Node{&node{st: n.st, path: pathName(name), opt: opt}}
	if n.path != "" {
		c.path = n.path + "." + c.path
	}
	m, ok := n.object()
	if !ok {
		c.opt = true // the problem, if any, is n's
		return c
	}
	c.v, c.has = m[name]
	return c
}

// Has tells whether object n has the member name, even a null one. With it a
// reader tells a member left out from one given as null, which Opt reads
// alike: for a member that may be left out but must be valid when given,
// Key reads it after Has.
func (n Node) Has(name string) bool {
	m, ok := n.object()
	if !ok {
		return false
	}
	_, ok = m[name]
	return ok
}

// object is object n; false if there is none to read, after recording a
// problem unless n is an optional Node that is missing or null.
func (n Node) object() (map[string]any, bool) {
	v, ok := n.get("an object")
	if !ok {
		return nil, false
	}
	m, ok := v.(map[string]any)
	if !ok {
		n.wrongType("an object")
	}
	return m, ok
}

// Keys is the member names of object n, sorted (bytewise); nil if n is
// missing or null.
func (n Node) Keys() []string {
	m, ok := n.object()
	if !ok {
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
		items[i] = Node{&node{st: n.st, path: p, v: e, has: true}}
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

// IntBetween is number n, which must be a whole number from lo to hi. Bounds
// beyond ±(2^53-1) are taken as ±(2^53-1): past that, numbers are not
// decoded exactly.
func (n Node) IntBetween(lo, hi int64) int64 {
	lo, hi = max(lo, -maxExact), min(hi, maxExact)
	want := fmt.Sprintf("an integer from %d to %d", lo, hi)
	v, ok := n.get(want)
	if !ok {
		return 0
	}
	f, ok := v.(float64)
	if !ok {
		n.wrongType(want)
		return 0
	}
	if f != math.Trunc(f) || f < float64(lo) || f > float64(hi) {
		n.Failf("expected %s, found %s", want, strconv.FormatFloat(f, 'g', -1, 64))
		return 0
	}
	return int64(f)
}

// DecUint64 is string n of decimal digits, the number from 0 to 2^64-1 it
// writes. Formats put numbers that may pass 2^53 in strings, as a JSON
// number is exact only up to there: LUKS2 its offsets and sizes, for one.
// Leading zeros are allowed; signs, spaces and "" are not.
func (n Node) DecUint64() uint64 {
	const want = "a decimal number in a string"
	v, ok := n.get(want)
	if !ok {
		return 0
	}
	s, ok := v.(string)
	if !ok {
		n.wrongType(want)
		return 0
	}
	u, err := strconv.ParseUint(s, 10, 64) // no sign, no "_" in base 10
	if err != nil {
		n.Failf("expected %s from 0 to 2^64-1, found %q", want, clip(s))
		return 0
	}
	return u
}

// Base64 is string n decoded from standard base64 with padding, the way
// encoding/json writes a []byte.
func (n Node) Base64() []byte {
	const want = "a base64 string"
	v, ok := n.get(want)
	if !ok {
		return nil
	}
	s, ok := v.(string)
	if !ok {
		n.wrongType(want)
		return nil
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		n.Failf("expected %s: %v", want, err)
		return nil
	}
	return b
}

// clip shortens s for messages, which are not to flood a console.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
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

// maxPathName is the most of a member's name a path shows.
const maxPathName = 40

// pathName is name as a path shows it: as it is when it is a short plain
// word, else quoted and clipped. A member name read from the input (a
// LUKS2 header's key slot names, which readers walk with Keys) reaches
// the console in error messages: it must not bring its own lines, escape
// sequences or megabytes (found by a hunting helper).
func pathName(name string) string {
	plain := len(name) <= maxPathName && name != ""
	for _, r := range name {
		if r <= ' ' || r > '~' || r == '.' || r == '"' || r == '\\' {
			plain = false
			break
		}
	}
	if plain {
		return name
	}
	if len(name) > maxPathName {
		return strconv.Quote(strings.ToValidUTF8(name[:maxPathName], "")) + "..."
	}
	return strconv.Quote(name)
}
