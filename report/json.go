// SPDX-License-Identifier: Apache-2.0

package report

import (
	"slices"

	"github.com/keel-boot/keel/internal/minjson"
)

// The JSON form of a Report is what encoding/json makes of it with the
// struct tags above, which stay the definition of the format (slotctl status
// embeds a Report in its own JSON output through them); Marshal and Parse
// write and read that form without encoding/json, which the init must not
// carry.

// Marshal encodes r as encoding/json's Marshal does, byte for byte.
func (r *Report) Marshal() ([]byte, error) {
	var w minjson.Writer
	w.BeginObject()
	w.Key("version")
	w.Int(int64(r.Version))
	w.Key("mode")
	w.String(r.Mode)
	optString(&w, "slot", r.Slot)
	optString(&w, "slot_reason", r.SlotReason)
	if r.TriesLeft != nil {
		w.Key("tries_left")
		w.Int(int64(*r.TriesLeft))
	}
	if r.Unconfirmed != 0 {
		w.Key("unconfirmed")
		w.Int(int64(r.Unconfirmed))
	}
	if r.MaxUnconfirmed != 0 {
		w.Key("max_unconfirmed")
		w.Int(int64(r.MaxUnconfirmed))
	}
	if r.BootStateSeq != 0 && r.BootStateSeq <= 1<<53-1 { // read back exactly, or left out
		w.Key("bootstate_seq")
		w.Int(int64(r.BootStateSeq))
	}
	optString(&w, "demoted", r.Demoted)
	if len(r.Fallbacks) > 0 {
		w.Key("fallbacks")
		w.BeginArray()
		for _, f := range r.Fallbacks {
			w.BeginObject()
			w.Key("slot")
			w.String(f.Slot)
			w.Key("reason")
			w.String(f.Reason)
			optString(&w, "class", f.Class)
			optBool(&w, "retired", f.Retired)
			w.EndObject()
		}
		w.EndArray()
	}
	optString(&w, "image_id", r.ImageID)
	if r.RollbackIndex != 0 {
		w.Key("rollback_index")
		w.Int(int64(r.RollbackIndex))
	}
	optString(&w, "root_hash", r.RootHash)
	w.Key("authenticated")
	w.Bool(r.Authenticated)
	optString(&w, "hash_source", r.HashSource)
	optString(&w, "key_id", r.KeyID)
	w.Key("overlay")
	w.String(r.Overlay)
	if len(r.Devices) > 0 {
		w.Key("devices")
		w.BeginObject()
		roles := make([]string, 0, len(r.Devices))
		for role := range r.Devices {
			roles = append(roles, role)
		}
		slices.Sort(roles)
		for _, role := range roles {
			w.Key(role)
			w.String(r.Devices[role])
		}
		w.EndObject()
	}
	if r.Data != nil {
		w.Key("data")
		r.Data.write(&w)
	}
	if r.EtcMerge != nil {
		w.Key("etc_merge")
		r.EtcMerge.write(&w)
	}
	w.Key("phases")
	if r.Phases == nil {
		w.Null()
	} else {
		w.BeginArray()
		for _, p := range r.Phases {
			w.BeginObject()
			w.Key("name")
			w.String(p.Name)
			w.Key("ms")
			w.Float(p.Ms)
			w.EndObject()
		}
		w.EndArray()
	}
	optStrings(&w, "warnings", r.Warnings)
	optObjects(&w, "refused", r.Refused, func(f Refused) []string {
		return []string{"option", f.Option, "reason", f.Reason}
	})
	w.Key("init")
	w.String(r.Init)
	optString(&w, "failure", r.Failure)
	w.Key("locked")
	w.Bool(r.Locked)
	optStrings(&w, "trusted_keys", r.TrustedKeys)
	optString(&w, "system_disk", r.SystemDisk)
	optObjects(&w, "stray_partitions", r.StrayPartitions, func(st Stray) []string {
		return []string{"device", st.Device, "label", st.Label, "disk", st.Disk}
	})
	optString(&w, "loader_partuuid", r.LoaderPartUUID)
	if r.Watchdog != nil {
		w.Key("watchdog")
		w.BeginObject()
		optString(&w, "device", r.Watchdog.Device)
		optString(&w, "identity", r.Watchdog.Identity)
		if r.Watchdog.Timeout != 0 {
			w.Key("timeout")
			w.Int(int64(r.Watchdog.Timeout))
		}
		optString(&w, "none", r.Watchdog.None)
		w.EndObject()
	}
	w.EndObject()
	return w.Bytes()
}

func (d *Data) write(w *minjson.Writer) {
	w.BeginObject()
	w.Key("device")
	w.String(d.Device)
	optString(w, "fstype", d.FSType)
	optBool(w, "encrypted", d.Encrypted)
	optBool(w, "volatile", d.Volatile)
	optStrings(w, "created", d.Created)
	optBool(w, "seeded", d.Seeded)
	optString(w, "upper", d.Upper)
	optBool(w, "fresh_upper", d.FreshUpper)
	optBool(w, "upper_read_only", d.UpperReadOnly)
	optStrings(w, "pruned", d.Pruned)
	optStrings(w, "set_aside", d.SetAside)
	optStrings(w, "binds", d.Binds)
	w.EndObject()
}

// optString, optBool and optStrings write members tagged omitempty.
func optString(w *minjson.Writer, key, s string) {
	if s != "" {
		w.Key(key)
		w.String(s)
	}
}

func optBool(w *minjson.Writer, key string, b bool) {
	if b {
		w.Key(key)
		w.Bool(true)
	}
}

// optObjects writes a member tagged omitempty that is an array of objects
// whose members are all strings; members gives each one's keys and values
// in turn, in the struct's order.
func optObjects[T any](w *minjson.Writer, key string, list []T, members func(T) []string) {
	if len(list) == 0 {
		return
	}
	w.Key(key)
	w.BeginArray()
	for _, item := range list {
		w.BeginObject()
		kv := members(item)
		for i := 0; i+1 < len(kv); i += 2 {
			w.Key(kv[i])
			w.String(kv[i+1])
		}
		w.EndObject()
	}
	w.EndArray()
}

func optStrings(w *minjson.Writer, key string, list []string) {
	if len(list) > 0 {
		w.Key(key)
		w.BeginArray()
		for _, s := range list {
			w.String(s)
		}
		w.EndArray()
	}
}

// Parse decodes a report. As with encoding/json, members it does not know are
// ignored and a missing or null member leaves its field zero; unlike it,
// member names must match exactly (not case-insensitively), and array
// elements and device paths must not be null.
func Parse(b []byte) (*Report, error) {
	v, err := minjson.Decode(b)
	if err != nil {
		return nil, err
	}
	root := minjson.Root(v)
	r := Report{
		Version:        root.Opt("version").Int(),
		Mode:           root.Opt("mode").Str(),
		Slot:           root.Opt("slot").Str(),
		SlotReason:     root.Opt("slot_reason").Str(),
		Unconfirmed:    root.Opt("unconfirmed").Int(),
		MaxUnconfirmed: root.Opt("max_unconfirmed").Int(),
		BootStateSeq:   uint64(root.Opt("bootstate_seq").IntBetween(0, 1<<53-1)),
		Demoted:        root.Opt("demoted").Str(),
		RollbackIndex:  uint64(root.Opt("rollback_index").Int()),
		ImageID:        root.Opt("image_id").Str(),
		RootHash:       root.Opt("root_hash").Str(),
		Authenticated:  root.Opt("authenticated").Bool(),
		HashSource:     root.Opt("hash_source").Str(),
		KeyID:          root.Opt("key_id").Str(),
		Overlay:        root.Opt("overlay").Str(),
		Warnings:       root.Opt("warnings").Strings(),
		Init:           root.Opt("init").Str(),
		Failure:        root.Opt("failure").Str(),
		Locked:         root.Opt("locked").Bool(),
		TrustedKeys:    root.Opt("trusted_keys").Strings(),
	}
	if n := root.Opt("tries_left"); n.Present() {
		tries := n.Int()
		r.TriesLeft = &tries
	}
	r.SystemDisk = root.Opt("system_disk").Str()
	r.LoaderPartUUID = root.Opt("loader_partuuid").Str()
	if items := root.Opt("stray_partitions").Items(); items != nil {
		r.StrayPartitions = make([]Stray, 0, len(items))
		for _, st := range items {
			r.StrayPartitions = append(r.StrayPartitions, Stray{Device: st.Opt("device").Str(), Label: st.Opt("label").Str(), Disk: st.Opt("disk").Str()})
		}
	}
	if items := root.Opt("fallbacks").Items(); items != nil {
		r.Fallbacks = make([]Fallback, 0, len(items))
		for _, f := range items {
			r.Fallbacks = append(r.Fallbacks, Fallback{Slot: f.Opt("slot").Str(), Reason: f.Opt("reason").Str(),
				Class: f.Opt("class").Str(), Retired: f.Opt("retired").Bool()})
		}
	}
	if items := root.Opt("refused").Items(); items != nil {
		r.Refused = make([]Refused, 0, len(items))
		for _, f := range items {
			r.Refused = append(r.Refused, Refused{Option: f.Opt("option").Str(), Reason: f.Opt("reason").Str()})
		}
	}
	if n := root.Opt("devices"); n.Present() {
		roles := n.Keys()
		r.Devices = make(map[string]string, len(roles))
		for _, role := range roles {
			r.Devices[role] = n.Key(role).Str()
		}
	}
	if n := root.Opt("data"); n.Present() {
		r.Data = &Data{
			Device:        n.Opt("device").Str(),
			FSType:        n.Opt("fstype").Str(),
			Encrypted:     n.Opt("encrypted").Bool(),
			Volatile:      n.Opt("volatile").Bool(),
			Created:       n.Opt("created").Strings(),
			Seeded:        n.Opt("seeded").Bool(),
			Upper:         n.Opt("upper").Str(),
			FreshUpper:    n.Opt("fresh_upper").Bool(),
			UpperReadOnly: n.Opt("upper_read_only").Bool(),
			Pruned:        n.Opt("pruned").Strings(),
			SetAside:      n.Opt("set_aside").Strings(),
			Binds:         n.Opt("binds").Strings(),
		}
	}
	if n := root.Opt("watchdog"); n.Present() {
		r.Watchdog = &Watchdog{Device: n.Opt("device").Str(), Identity: n.Opt("identity").Str(),
			Timeout: n.Opt("timeout").Int(), None: n.Opt("none").Str()}
	}
	if n := root.Opt("etc_merge"); n.Present() {
		r.EtcMerge = parseEtcMerge(n)
	}
	if items := root.Opt("phases").Items(); items != nil {
		r.Phases = make([]Phase, 0, len(items))
		for _, p := range items {
			r.Phases = append(r.Phases, Phase{Name: p.Opt("name").Str(), Ms: p.Opt("ms").Float()})
		}
	}
	if err := root.Err(); err != nil {
		return nil, err
	}
	return &r, nil
}
