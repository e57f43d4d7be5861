package devices

import (
	"strings"
	"testing"
)

func TestParseSpec(t *testing.T) {
	tests := []struct {
		in      string
		want    Spec
		wantErr string
	}{
		{in: "/dev/vda1", want: Spec{KindPath, "/dev/vda1"}},
		{in: "/dev/mapper/root", want: Spec{KindPath, "/dev/mapper/root"}},
		{in: "UUID=3F2A-9C01", want: Spec{KindUUID, "3f2a-9c01"}},
		{in: "PARTUUID=0FC63DAF-8483-4772-8E79-3D69D8477DE4", want: Spec{KindPartUUID, "0fc63daf-8483-4772-8e79-3d69d8477de4"}},
		{in: "LABEL=Data", want: Spec{KindLabel, "Data"}},
		{in: "PARTLABEL=verity-b", want: Spec{KindPartLabel, "verity-b"}},
		{in: "PARTLABEL=a=b", want: Spec{KindPartLabel, "a=b"}},
		{in: "vda1", wantErr: "want /dev/NAME"},
		{in: "/dev/", wantErr: "want a device path"},
		{in: "/dev/../etc/passwd", wantErr: "want a device path"},
		{in: "/dev//vda", wantErr: "want a device path"},
		{in: "/tmp/disk.img", wantErr: "want a device path"},
		{in: "LABEL=", wantErr: "empty value"},
		{in: "PARTUUID=1234", wantErr: "want a GPT partition GUID"},
		{in: "label=x", wantErr: "want /dev/NAME"},
	}
	for _, tt := range tests {
		got, err := ParseSpec(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseSpec(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseSpec(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestSpecStringRoundTrip(t *testing.T) {
	for _, s := range []string{"/dev/vda", "UUID=abc", "PARTUUID=0fc63daf-8483-4772-8e79-3d69d8477de4", "LABEL=x y", "PARTLABEL=root-a"} {
		sp, err := ParseSpec(s)
		if err != nil {
			t.Fatal(err)
		}
		if sp.String() != s {
			t.Errorf("ParseSpec(%q).String() = %q", s, sp.String())
		}
	}
}

func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{"/dev/vda", "UUID=x", "PARTUUID=0fc63daf-8483-4772-8e79-3d69d8477de4", "LABEL=", "PARTLABEL=root-a", "/dev/../x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sp, err := ParseSpec(s)
		if err != nil {
			return
		}
		again, err := ParseSpec(sp.String())
		if err != nil || again != sp {
			t.Fatalf("ParseSpec(%q) = %v, but reparsing %q gives %v, %v", s, sp, sp.String(), again, err)
		}
	})
}
