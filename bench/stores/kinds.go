package stores

// All returns every store the runner knows, in a fixed order: the physical
// limit first, then possum, then its peers.
func All() []Kind {
	return []Kind{Raw, Possum, Squirrel, Diskv, Bbolt, Memcached}
}

// ByName returns the Kind called name.
func ByName(name string) (Kind, bool) {
	for _, k := range All() {
		if k.Name == name {
			return k, true
		}
	}
	return Kind{}, false
}
