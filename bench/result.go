package main

import "time"

// The runner writes one Run as JSON per invocation (bench/out/<label>.json);
// the report step (-report) reads every such file and writes RESULTS.md and
// the charts. These types are that contract: change them only together.

// Run is the outcome of one runner invocation on one directory.
type Run struct {
	Label    string    // what the run is: "peers" or a filesystem name ("ext4", "xfs", ...)
	FS       string    // filesystem type of the store directory, as statfs says (ext4, xfs, btrfs, tmpfs)
	Dir      string    // base directory the stores lived in
	Command  string    // the command line that produced it
	Quick    bool      // -quick was given
	Started  time.Time // when the run began
	Seconds  float64   // how long the whole run took
	Machine  Machine
	Results  []Result
	Capacity []CapacityRun
	Paired   []PairedRun
}

// Machine describes where a run happened.
type Machine struct {
	CPU       string // model name from /proc/cpuinfo
	Cores     int    // runtime.NumCPU
	MemBytes  int64  // MemTotal
	Kernel    string // uname -r
	GoVersion string // runtime.Version
	OS        string // PRETTY_NAME from /etc/os-release
}

// Result is one (store, workload, value size, concurrency) cell.
type Result struct {
	Store      string // stores.Kind.Name
	Workload   string // "put", "get-hot", "get-miss", "mixed" (90/10 zipf), ...
	ValueSize  int    // bytes per value
	Goroutines int    // goroutines per process
	Processes  int    // OS processes sharing the store (1 unless a multi-process run)

	Ops       int64   // operations completed
	Errors    int64   // failed operations, including values that did not check out
	Seconds   float64 // time the operations took (see the runner for how it is measured)
	OpsPerSec float64
	MBPerSec  float64 // value bytes moved per second (0 for misses)
	P50Nanos  int64   // latency percentiles of single operations
	P99Nanos  int64
	// BytesWrittenPerOp is storage writes (/proc/<pid>/io write_bytes, the
	// store's server included) divided by Ops; -1 when not measurable.
	BytesWrittenPerOp float64
	DiskUsed          int64  // bytes the store's directory occupies on disk after the workload (st_blocks), -1 if unknown
	DataBytes         int64  // logical bytes of live values the workload left in the store
	Skipped           string // non-empty: the cell was not run, and why
}

// CapacityRun records a bounded store filled with twice its capacity while a
// hot set is re-read throughout.
type CapacityRun struct {
	Store       string
	ValueSize   int
	Capacity    int64 // bytes the store was bounded to (half the data)
	DataBytes   int64 // bytes written in all
	Samples     []CapacitySample
	HotKeys     int // size of the hot set
	HotSurvived int // hot keys still readable (and correct) at the end
	Errors      int64
	Skipped     string
}

// CapacitySample is disk use at one point of a capacity run.
type CapacitySample struct {
	Seconds  float64 // since the run began
	Written  int64   // value bytes written so far
	DiskUsed int64   // st_blocks of the store's directory, in bytes
}

// PairedRun is possum's hot reads on one goroutine measured against a
// reference store (raw) in alternating slices (see paired.go): StoreOps[i]
// and AgainstOps[i] are reads/s of adjacent slices, so their ratio is free
// of the machine's drift over minutes.
type PairedRun struct {
	Store        string // "possum"
	Against      string // the reference store, "raw"
	ValueSize    int
	Keys         int
	SliceSeconds float64   // length of each slice
	StoreOps     []float64 // possum's reads/s, slice by slice
	AgainstOps   []float64 // the reference's, slice by slice
	StoreP50     int64     // latency percentiles over all of a store's slices, ns
	StoreP99     int64
	AgainstP50   int64
	AgainstP99   int64
	Errors       int64 // failed reads or wrong values, in either store (load and warm-up included)
	Skipped      string
}
