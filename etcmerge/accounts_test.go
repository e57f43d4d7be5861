// SPDX-License-Identifier: Apache-2.0

package etcmerge

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

func TestMergeAccounts(t *testing.T) {
	const root = "root:x:0:0:root:/root:/bin/bash\n"
	for _, tc := range []struct {
		name             string
		db               DB
		local, base, new string
		noBase           bool
		want             string
		issues           []string // substrings, one per issue
	}{{
		name: "user added locally and system user added upstream: both",
		db:   Passwd, base: root,
		local: root + "alice:x:1000:1000::/home/alice:/bin/bash\n",
		new:   root + "_chrony:x:998:998::/:/usr/sbin/nologin\n",
		want:  root + "alice:x:1000:1000::/home/alice:/bin/bash\n_chrony:x:998:998::/:/usr/sbin/nologin\n",
	}, {
		name: "entry in both: local wins (shell), no issue when upstream did not change it",
		db:   Passwd, base: root, local: "root:x:0:0:root:/root:/bin/zsh\n", new: root,
		want: "root:x:0:0:root:/root:/bin/zsh\n",
	}, {
		name: "entry changed on both sides: local wins, reported",
		db:   Shadow, base: "root:*:1::::::\n", local: "root:$6$mine:2::::::\n", new: "root:!:3::::::\n",
		want: "root:$6$mine:2::::::\n", issues: []string{"shadow entry root changed locally and in the new image"},
	}, {
		name: "same name, another id: local kept, not renumbered, reported",
		db:   Passwd, base: root, local: root + "svc:x:1001:1001::/:/bin/false\n", new: root + "svc:x:997:997::/:/bin/false\n",
		want: root + "svc:x:1001:1001::/:/bin/false\n", issues: []string{"passwd svc has id 1001 locally, 997 in the new image"},
	}, {
		name: "same id, another name: both kept, reported",
		db:   Group, base: "root:x:0:\n", local: "root:x:0:\nalice:x:1000:\n", new: "root:x:0:\nsvc:x:1000:\n",
		want: "root:x:0:\nalice:x:1000:\nsvc:x:1000:\n", issues: []string{"group svc of the new image has id 1000, which is local alice's"},
	}, {
		name: "group members: local wins",
		db:   Group, base: "sudo:x:27:\n", local: "sudo:x:27:alice\n", new: "sudo:x:27:bob\n",
		want: "sudo:x:27:alice\n", issues: []string{"group entry sudo changed locally and in the new image"},
	}, {
		name: "deleted locally: stays deleted; changed upstream too: reported",
		db:   Passwd, base: root + "games:x:5:60::/:/bin/false\nnews:x:9:9::/:/bin/false\n", local: root,
		new:  root + "games:x:5:60::/:/bin/false\nnews:x:9:9::/:/usr/sbin/nologin\n",
		want: root, issues: []string{"passwd entry news deleted locally and changed in the new image"},
	}, {
		name: "removed upstream, unchanged locally: removed",
		db:   Passwd, base: root + "old:x:7:7::/:/bin/false\n", local: root + "old:x:7:7::/:/bin/false\nalice:x:1000:1000::/:/bin/sh\n", new: root,
		want: root + "alice:x:1000:1000::/:/bin/sh\n",
	}, {
		name: "changed locally, removed upstream: the local entry kept, reported (an orphan shadow line otherwise unseen)",
		db:   Shadow, base: "root:*:1::::::\nsetup:$6$x:1::::::\n", local: "root:*:1::::::\nsetup:!$6$x:1::::::\n", new: "root:*:2::::::\n",
		want: "root:*:2::::::\nsetup:!$6$x:1::::::\n", issues: []string{"shadow entry setup changed locally, removed in the new image: the local one is kept"},
	}, {
		name: "changed upstream, unchanged locally: the new image's (a password locked upstream)",
		db:   Shadow, base: "root:!:19000::::::\nsetup:$6$known$hash:19000::::::\n",
		local: "root:!:19000::::::\nsetup:$6$known$hash:19000::::::\nalice:$6$alice:19500::::::\n",
		new:   "root:!:19000::::::\nsetup:!*:19600::::::\n",
		want:  "root:!:19000::::::\nsetup:!*:19600::::::\nalice:$6$alice:19500::::::\n",
	}, {
		name: "group members changed upstream, unchanged locally: the new image's",
		db:   Group, base: "sudo:x:27:setup\n", local: "sudo:x:27:setup\nalice:x:1000:\n", new: "sudo:x:27:\n",
		want: "sudo:x:27:\nalice:x:1000:\n",
	}, {
		name: "id changed upstream, entry unchanged locally: the local id stays, reported",
		db:   Passwd, base: root + "svc:x:1001:1001::/:/bin/false\n", local: root + "svc:x:1001:1001::/:/bin/false\n", new: root + "svc:x:997:997::/:/usr/sbin/nologin\n",
		want: root + "svc:x:1001:1001::/:/bin/false\n", issues: []string{"passwd svc has id 1001 locally, 997 in the new image"},
	}, {
		name: "primary group changed upstream, entry unchanged locally: the local GID stays, reported",
		db:   Passwd, base: root + "svc:x:1001:1001::/:/bin/false\n", local: root + "svc:x:1001:1001::/:/bin/false\n", new: root + "svc:x:1001:997::/:/bin/false\n",
		want: root + "svc:x:1001:1001::/:/bin/false\n", issues: []string{"passwd svc has primary group 1001 locally, 997 in the new image"},
	}, {
		name: "no base: nothing known unchanged, the local entry stays",
		db:   Shadow, noBase: true, local: "setup:$6$known:1::::::\n", new: "setup:!*:2::::::\n",
		want: "setup:$6$known:1::::::\n",
	}, {
		name: "no base: nothing known deleted, upstream entries added",
		db:   GShadow, noBase: true, local: "root:*::\n", new: "root:*::\nsvc:!::\n",
		want: "root:*::\nsvc:!::\n",
	}, {
		name: "subuid ranges: a union by line",
		db:   SubUID, base: "", local: "alice:100000:65536\n", new: "_svc:165536:65536\n",
		want: "alice:100000:65536\n_svc:165536:65536\n",
	}, {
		name: "comments and odd lines are kept",
		db:   SubGID, base: "# c\n", local: "# c\nalice:1:2\ngarbage\n", new: "# c\n# new comment\n",
		want: "# c\nalice:1:2\ngarbage\n# new comment\n",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got, issues := MergeAccounts(tc.db, []byte(tc.local), []byte(tc.base), []byte(tc.new), !tc.noBase)
			if string(got) != tc.want {
				t.Errorf("merged:\n%s\nwant:\n%s", got, tc.want)
			}
			if len(issues) != len(tc.issues) {
				t.Fatalf("issues %q, want %q", issues, tc.issues)
			}
			for i, s := range tc.issues {
				if !strings.Contains(issues[i], s) {
					t.Errorf("issue %q, want it to say %q", issues[i], s)
				}
			}
		})
	}
}

func TestParseAccounts(t *testing.T) {
	es := ParseAccounts(Passwd, []byte("root:x:0:0::/root:/bin/sh\n# comment\n\nodd\nx:y\n"))
	want := []Entry{
		{Key: "root", ID: "0", Line: "root:x:0:0::/root:/bin/sh"},
		{Key: "\x00# comment", Line: "# comment"},
		{Key: "\x00", Line: ""},
		{Key: "\x00odd", Line: "odd"},
		{Key: "x", Line: "x:y"},
	}
	if !reflect.DeepEqual(es, want) {
		t.Errorf("ParseAccounts = %q\nwant %q", es, want)
	}
}

// Round trip: formatting what was parsed gives the bytes back (a final
// newline added), and merging a file with itself changes nothing.
func FuzzParseAccounts(f *testing.F) {
	f.Add(uint8(0), []byte("root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\n"))
	f.Add(uint8(1), []byte("sudo:x:27:alice,bob\n#c\n\n"))
	f.Add(uint8(2), []byte("root:*:19000:0:99999:7:::"))
	f.Add(uint8(4), []byte("alice:100000:65536\nalice:100000:65536\n"))
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		db := DB(int(which) % len(dbNames))
		es := ParseAccounts(db, data)
		out := FormatAccounts(es)
		want := data
		if len(data) > 0 && data[len(data)-1] != '\n' {
			want = append(append([]byte{}, data...), '\n')
		}
		if !bytes.Equal(out, want) {
			t.Fatalf("round trip of %q gave %q", data, out)
		}
		if again := ParseAccounts(db, out); !reflect.DeepEqual(again, es) {
			t.Fatalf("parse after format differs: %q vs %q", again, es)
		}
		merged, _ := MergeAccounts(db, data, data, data, true)
		if !bytes.Equal(merged, out) {
			t.Fatalf("merging %q with itself gave %q", data, merged)
		}
	})
}

// FuzzMergeAccounts: whatever the three versions hold, every local line is
// kept in order (local wins, nothing renumbered), and every line of the
// result comes from the local or the new version.
func FuzzMergeAccounts(f *testing.F) {
	f.Add(uint8(0), []byte("root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/:/bin/sh\n"), []byte("root:x:0:0::/root:/bin/sh\n"), []byte("root:x:0:0::/root:/bin/sh\nsvc:x:1000:1000::/:/bin/false\n"), true)
	f.Add(uint8(1), []byte("sudo:x:27:alice\n"), []byte("sudo:x:27:\nold:x:5:\n"), []byte("sudo:x:27:bob\nold:x:6:\n"), false)
	f.Fuzz(func(t *testing.T, which uint8, local, base, new []byte, haveBase bool) {
		db := DB(int(which) % len(dbNames))
		out, _ := MergeAccounts(db, local, base, new, haveBase)
		got := ParseAccounts(db, out)
		fromNew := map[string]bool{}
		for _, e := range ParseAccounts(db, new) {
			fromNew[e.Line] = true
		}
		removed := map[string]bool{}   // local lines upstream removed and never changed here
		updated := map[string]string{} // local lines never changed here that upstream changed, same id
		if haveBase {
			b, n := index(ParseAccounts(db, base)), index(ParseAccounts(db, new))
			for _, e := range ParseAccounts(db, local) {
				if be, ok := b[e.Key]; ok && be.Line == e.Line {
					ne, inNew := n[e.Key]
					switch {
					case !inNew:
						removed[e.Line] = true
					case ne.ID == e.ID && (db != Passwd || gidField(ne.Line) == gidField(e.Line)):
						updated[e.Line] = ne.Line
					}
				}
			}
		}
		i := 0
		for _, e := range ParseAccounts(db, local) {
			if removed[e.Line] {
				continue
			}
			want := e.Line
			if u, ok := updated[e.Line]; ok {
				want = u
			}
			for i < len(got) && got[i].Line != want {
				i++
			}
			if i == len(got) {
				t.Fatalf("local line %q lost (want %q in its place): merged %q", e.Line, want, out)
			}
			i++
		}
		locals := map[string]bool{}
		for _, e := range ParseAccounts(db, local) {
			locals[e.Line] = true
		}
		for _, e := range got {
			if !locals[e.Line] && !fromNew[e.Line] {
				t.Fatalf("line %q comes from neither side: merged %q", e.Line, out)
			}
		}
	})
}

// gidField is the fuzz test's own reading of a passwd line's primary GID.
func gidField(line string) string {
	f := strings.Split(line, ":")
	if len(f) > 3 {
		return f[3]
	}
	return ""
}
