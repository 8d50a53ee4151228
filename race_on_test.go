//go:build race

package possum_test

// raceEnabled says the tests run under the race detector, where
// modernc.org/sqlite (C translated to Go, every memory access instrumented)
// runs tens of times slower.
const raceEnabled = true
