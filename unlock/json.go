package unlock

import "github.com/keel-boot/keel/internal/minjson"

// decodeJSON decodes a LUKS2 JSON area into the generic tree the metadata
// walker reads: map[string]any, []any, string, float64, bool and nil, as
// encoding/json gives for an *any. minjson rather than encoding/json keeps
// the init 0.25 MB smaller; it is differentially fuzzed against it.
func decodeJSON(b []byte) (any, error) { return minjson.Decode(b) }
