// SPDX-License-Identifier: Apache-2.0

package mounts

import (
	"fmt"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Overlay modes, as on the command line.
const (
	OverlayTmpfs      = "tmpfs"
	OverlayPersistent = "persistent"
	OverlayOff        = "off"
)

// Layout is where the pieces of the new root live. Lower and upper mounts are
// kept under /run so that they stay visible (and unmountable) from the booted
// system once /run has been moved into it.
type Layout struct {
	NewRoot string // the assembled root, moved to / by SwitchRoot
	Lower   string // the read-only image
	Upper   string // a tmpfs (or data partition directory) holding upper/ and work/
}

// DefaultLayout is the layout the init uses.
var DefaultLayout = Layout{
	NewRoot: "/newroot",
	Lower:   "/run/keel/lower",
	Upper:   "/run/keel/overlay",
}

// Image mounts the read-only root image at l.Lower.
func (l Layout) Image(dev, fstype string) Mount {
	return Mount{Source: dev, Target: l.Lower, FSType: fstype, Flags: unix.MS_RDONLY | unix.MS_NODEV}
}

// RootMounts returns the mounts that assemble the new root from the image
// already mounted at l.Lower, for the given overlay mode. For
// OverlayPersistent, upperDir is a directory on the data partition that will
// hold upper/ and work/; it is ignored otherwise.
func (l Layout) RootMounts(mode, upperDir string) ([]Mount, error) {
	switch mode {
	case OverlayOff:
		// The image is mounted read-only already; a bind keeps it so.
		return []Mount{{Source: l.Lower, Target: l.NewRoot, Flags: unix.MS_BIND | unix.MS_REC}}, nil
	case OverlayTmpfs:
		return []Mount{l.upperTmpfs(), l.overlay(l.Upper)}, nil
	case OverlayPersistent:
		if upperDir == "" {
			return nil, fmt.Errorf("overlay=persistent needs a data partition directory for the upper layer")
		}
		return []Mount{l.overlay(upperDir)}, nil
	}
	return nil, fmt.Errorf("overlay mode %q: expected %s, %s or %s", mode, OverlayTmpfs, OverlayPersistent, OverlayOff)
}

// FrozenUpperMounts stack a tmpfs upper over the persistent upper
// directory upperDir (its upper/ then the image, both read-only lowers):
// the root shows what the persistent upper holds, and nothing written to
// it in this boot reaches the data partition. Whiteouts and opaque
// directories of upperDir work in a lower layer as in an upper.
func (l Layout) FrozenUpperMounts(upperDir string) []Mount {
	return []Mount{l.upperTmpfs(), l.overlay(l.Upper, filepath.Join(upperDir, "upper"))}
}

// upperTmpfs is the tmpfs of a volatile upper layer.
func (l Layout) upperTmpfs() Mount {
	return Mount{Source: "tmpfs", Target: l.Upper, FSType: "tmpfs", Flags: unix.MS_NOSUID | unix.MS_NODEV, Data: "mode=0755"}
}

// overlay mounts the new root with base's upper and work directories over
// the lowers given, topmost first, then the image.
func (l Layout) overlay(base string, lowers ...string) Mount {
	upper, work := filepath.Join(base, "upper"), filepath.Join(base, "work")
	return Mount{
		Source: "overlay", Target: l.NewRoot, FSType: "overlay",
		Data:    overlayData(append(lowers, l.Lower), upper, work),
		Prepare: []string{upper, work},
	}
}

// OverlayData is the option string for an overlay mount. Paths containing the
// characters overlayfs uses as separators are escaped.
func OverlayData(lower, upper, work string) string {
	return overlayData([]string{lower}, upper, work)
}

// overlayData is OverlayData with lower layers stacked, topmost first.
//
// redirect_dir=follow whatever the kernel's default: a directory of the
// image renamed in the root (mv /etc/foo.d /etc/bar.d) is copied up whole
// (rename says EXDEV, and mv copies), never recorded as a redirect
// (trusted.overlay.redirect) in an upper that holds only what changed: the
// /etc merge carries an upper's entries into the next image's upper, where
// a redirect would name a directory of the old image, and the files of the
// renamed directory would be lost at the next update. Redirects an upper
// already holds are still followed. Debian's kernel behaves so by default
// (CONFIG_OVERLAY_FS_REDIRECT_DIR off, REDIRECT_ALWAYS_FOLLOW on); others
// may not.
func overlayData(lowers []string, upper, work string) string {
	esc := make([]string, len(lowers))
	for i, l := range lowers {
		esc[i] = overlayEscaper.Replace(l)
	}
	return "lowerdir=" + strings.Join(esc, ":") + ",upperdir=" + overlayEscaper.Replace(upper) + ",workdir=" + overlayEscaper.Replace(work) + ",redirect_dir=follow"
}

// overlayEscaper escapes the characters overlayfs separates options and
// layers with.
var overlayEscaper = strings.NewReplacer(`\`, `\\`, `,`, `\,`, `:`, `\:`)
