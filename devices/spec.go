package devices

import (
	"fmt"
	"path"
	"strings"
)

// Spec kinds, the values of Spec.Kind.
const (
	KindPath      = "path"
	KindUUID      = "uuid"
	KindPartUUID  = "partuuid"
	KindLabel     = "label"
	KindPartLabel = "partlabel"
)

// Spec is a parsed DEVSPEC. UUID and PARTUUID values are lowercased so they
// compare with what the probes return; labels are kept byte for byte.
type Spec struct {
	Kind, Value string
}

// specPrefixes maps the DEVSPEC prefixes to kinds; the longer PART* prefixes
// are listed first because "PARTUUID=" would otherwise never be reached.
var specPrefixes = [...]struct{ prefix, kind string }{
	{"PARTUUID=", KindPartUUID},
	{"PARTLABEL=", KindPartLabel},
	{"UUID=", KindUUID},
	{"LABEL=", KindLabel},
}

// ParseSpec parses a DEVSPEC: /dev/NAME, UUID=, PARTUUID=, LABEL= or PARTLABEL=.
func ParseSpec(s string) (Spec, error) {
	if strings.HasPrefix(s, "/") {
		return parsePathSpec(s)
	}
	for _, p := range specPrefixes {
		if v, ok := strings.CutPrefix(s, p.prefix); ok {
			return newSpec(p.kind, v)
		}
	}
	return Spec{}, fmt.Errorf("device spec %q: want /dev/NAME, UUID=, PARTUUID=, LABEL= or PARTLABEL=", s)
}

func parsePathSpec(s string) (Spec, error) {
	name, ok := strings.CutPrefix(s, "/dev/")
	if !ok || name == "" || path.Clean(s) != s || strings.Contains(name, "..") {
		return Spec{}, fmt.Errorf("device spec %q: want a device path like /dev/vda1", s)
	}
	return Spec{Kind: KindPath, Value: s}, nil
}

func newSpec(kind, v string) (Spec, error) {
	sp := Spec{Kind: kind, Value: v}
	if v == "" {
		return Spec{}, fmt.Errorf("device spec %s: empty value", sp)
	}
	switch kind {
	case KindUUID:
		sp.Value = strings.ToLower(v)
	case KindPartUUID:
		sp.Value = strings.ToLower(v)
		if !isCanonicalGUID(sp.Value) {
			return Spec{}, fmt.Errorf("device spec %s: want a GPT partition GUID like 01234567-89ab-cdef-0123-456789abcdef", sp)
		}
	}
	return sp, nil
}

// isCanonicalGUID reports whether s is 8-4-4-4-12 lowercase hex digits.
func isCanonicalGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
	}
	return true
}

// String returns the spec in DEVSPEC syntax, as an operator would type it.
func (s Spec) String() string {
	switch s.Kind {
	case KindPath:
		return s.Value
	case KindUUID:
		return "UUID=" + s.Value
	case KindPartUUID:
		return "PARTUUID=" + s.Value
	case KindLabel:
		return "LABEL=" + s.Value
	case KindPartLabel:
		return "PARTLABEL=" + s.Value
	}
	return s.Kind + "=" + s.Value
}
