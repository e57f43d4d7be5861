package unlock

import (
	"encoding/base64"
	"fmt"
	"math"
	"slices"
	"strconv"
)

// node is a value in the decoded JSON tree with its path from the root
// ("keyslots.1.kdf.salt"), so that every error names what was wrong where.
type node struct {
	path string
	v    any
}

func (n node) errorf(format string, args ...any) error {
	return fmt.Errorf("%s: "+format, append([]any{n.path}, args...)...)
}

// object returns n as a JSON object.
func (n node) object() (map[string]any, error) {
	m, ok := n.v.(map[string]any)
	if !ok {
		return nil, n.errorf("expected an object, found %s", kind(n.v))
	}
	return m, nil
}

// get returns the member name of object n; missing members are errors.
func (n node) get(name string) (node, error) {
	m, err := n.object()
	if err != nil {
		return node{}, err
	}
	c := n.child(name)
	v, ok := m[name]
	if !ok {
		return node{}, c.errorf("missing")
	}
	c.v = v
	return c, nil
}

// lookup returns the member name of object n and whether it is there.
func (n node) lookup(name string) (node, bool, error) {
	m, err := n.object()
	if err != nil {
		return node{}, false, err
	}
	v, ok := m[name]
	c := n.child(name)
	c.v = v
	return c, ok, nil
}

func (n node) child(name string) node {
	if n.path == "" {
		return node{path: name}
	}
	return node{path: n.path + "." + name}
}

// members returns the members of object n whose names are decimal numbers
// below limit (key slot, segment and digest numbers), sorted by number.
// Other names are errors.
func (n node) members(limit int) ([]int, []node, error) {
	m, err := n.object()
	if err != nil {
		return nil, nil, err
	}
	ids := make([]int, 0, len(m))
	for name := range m {
		id, err := strconv.Atoi(name)
		if err != nil || id < 0 || id >= limit || strconv.Itoa(id) != name {
			return nil, nil, n.child(name).errorf("expected a number from 0 to %d as the name", limit-1)
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	nodes := make([]node, len(ids))
	for i, id := range ids {
		name := strconv.Itoa(id)
		nodes[i] = n.child(name)
		nodes[i].v = m[name]
	}
	return ids, nodes, nil
}

func (n node) str() (string, error) {
	s, ok := n.v.(string)
	if !ok {
		return "", n.errorf("expected a string, found %s", kind(n.v))
	}
	return s, nil
}

// getString returns the string member name of object n.
func (n node) getString(name string) (string, error) {
	c, err := n.get(name)
	if err != nil {
		return "", err
	}
	return c.str()
}

// getInt returns the member name of object n, a JSON number that must be
// a whole number from lo to hi.
func (n node) getInt(name string, lo, hi int64) (int64, error) {
	c, err := n.get(name)
	if err != nil {
		return 0, err
	}
	return c.integer(lo, hi)
}

func (n node) integer(lo, hi int64) (int64, error) {
	f, ok := n.v.(float64)
	if !ok {
		return 0, n.errorf("expected a number, found %s", kind(n.v))
	}
	// Outside ±2^53 a float64 is not exact; no LUKS2 number gets near.
	if f != math.Trunc(f) || f < -(1<<53) || f > 1<<53 || int64(f) < lo || int64(f) > hi {
		return 0, n.errorf("expected a whole number from %d to %d, found %v", lo, hi, f)
	}
	return int64(f), nil
}

// getUint64 returns the member name of object n: LUKS2 writes 64-bit
// numbers (offsets, sizes) as strings of decimal digits.
func (n node) getUint64(name string) (uint64, error) {
	c, err := n.get(name)
	if err != nil {
		return 0, err
	}
	s, err := c.str()
	if err != nil {
		return 0, c.errorf("expected a decimal number in a string, found %s", kind(c.v))
	}
	u, err := strconv.ParseUint(s, 10, 64)
	if err != nil || s == "" || s[0] < '0' || s[0] > '9' {
		return 0, c.errorf("expected a decimal number in a string from 0 to 2^64-1, found %q", clip(s))
	}
	return u, nil
}

// getBase64 returns the member name of object n decoded from base64.
func (n node) getBase64(name string) ([]byte, error) {
	c, err := n.get(name)
	if err != nil {
		return nil, err
	}
	s, ok := c.v.(string)
	if !ok {
		return nil, c.errorf("expected a base64 string, found %s", kind(c.v))
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, c.errorf("expected a base64 string: %v", err)
	}
	return b, nil
}

// getNumbers returns the member name of object n, an array of strings of
// decimal numbers below limit (the key slots or segments a digest covers).
func (n node) getNumbers(name string, limit int) ([]int, error) {
	c, err := n.get(name)
	if err != nil {
		return nil, err
	}
	a, ok := c.v.([]any)
	if !ok {
		return nil, c.errorf("expected an array, found %s", kind(c.v))
	}
	ids := make([]int, len(a))
	for i, v := range a {
		e := node{path: c.path + "." + strconv.Itoa(i), v: v}
		s, err := e.str()
		if err != nil {
			return nil, err
		}
		id, err := strconv.Atoi(s)
		if err != nil || id < 0 || id >= limit || strconv.Itoa(id) != s {
			return nil, e.errorf("expected a number from 0 to %d in a string, found %q", limit-1, clip(s))
		}
		ids[i] = id
	}
	return ids, nil
}

// strings returns n, an array of strings.
func (n node) strings() ([]string, error) {
	a, ok := n.v.([]any)
	if !ok {
		return nil, n.errorf("expected an array of strings, found %s", kind(n.v))
	}
	s := make([]string, len(a))
	for i, v := range a {
		e := node{path: n.path + "." + strconv.Itoa(i), v: v}
		if s[i], ok = v.(string); !ok {
			return nil, e.errorf("expected a string, found %s", kind(v))
		}
	}
	return s, nil
}

// kind names the JSON type of v for messages.
func kind(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return fmt.Sprintf("the string %q", clip(v))
	case float64:
		return fmt.Sprintf("the number %v", v)
	case bool:
		return fmt.Sprintf("%v", v)
	}
	return fmt.Sprintf("a %T", v)
}

// clip shortens s for messages: headers are not to flood the console.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
