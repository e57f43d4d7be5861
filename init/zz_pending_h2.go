package main

// lastGood is a placeholder until the boot state records the image last
// marked good (slotctl mark-good): the lead replaces it at merge, and
// deletes this file. ok=false means "not recorded": no /etc merge.
func (b *boot) lastGood() (slot, imageID string, ok bool) { return "", "", false }
