package main

import (
	"bufio"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"github.com/seed475afdc4/possum/bench/stores"
	"golang.org/x/sys/unix"
)

// procField returns the integer after "name:" in a /proc file of
// "name: value" lines (io, status, meminfo), or an error.
func procField(path, name string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for line := range bytes.Lines(b) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok || string(k) != name {
			continue
		}
		f := strings.Fields(string(v))
		if len(f) == 0 {
			break
		}
		return strconv.ParseInt(f[0], 10, 64)
	}
	return 0, errors.New(path + ": no " + name)
}

func procPath(pid int, file string) string {
	if pid == 0 {
		return "/proc/self/" + file
	}
	return "/proc/" + strconv.Itoa(pid) + "/" + file
}

// writeBytes is write_bytes of /proc/<pid>/io (pid 0: this process): the
// bytes the process caused to be written to storage (counted when pages are
// dirtied, so it includes writeback that happens later). -1 if unreadable.
func writeBytes(pid int) int64 {
	n, err := procField(procPath(pid, "io"), "write_bytes")
	if err != nil {
		return -1
	}
	return n
}

// rssBytes is VmRSS of /proc/<pid>/status in bytes, -1 if unknown.
func rssBytes(pid int) int64 {
	n, err := procField(procPath(pid, "status"), "VmRSS")
	if err != nil {
		return -1
	}
	return n << 10
}

// server is stores.Server (declared here too so this file does not depend on
// when the adapters land): a store with a server process.
type server interface{ ServerPID() int }

// serverPID is the pid of a store's server process, or 0.
func serverPID(st stores.Store) int {
	if s, ok := st.(server); ok {
		return s.ServerPID()
	}
	return 0
}

// ioMeter measures write_bytes of this process plus a store's server.
type ioMeter struct {
	server int
	start  int64
}

func (m *ioMeter) total() int64 {
	n := writeBytes(0)
	if n < 0 {
		return -1
	}
	if m.server > 0 {
		s := writeBytes(m.server)
		if s < 0 {
			return -1
		}
		n += s
	}
	return n
}

func startIO(st stores.Store) *ioMeter {
	m := &ioMeter{server: serverPID(st)}
	m.start = m.total()
	return m
}

// delta is the bytes written since start, -1 if not measurable.
func (m *ioMeter) delta() int64 {
	if m.start < 0 {
		return -1
	}
	n := m.total()
	if n < 0 {
		return -1
	}
	return n - m.start
}

// settle writes back the dirty pages of dir's filesystem (syncfs), outside
// any timed region. Cells start from it so that one cell's writeback does not
// land in the next one's timing, and so that write_bytes (counted when a
// clean page is dirtied) sees the pages a cell writes even when an earlier
// cell dirtied them. Errors are ignored: it is an aid, not a measurement.
func settle(dir string) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	unix.Syncfs(fd)
	unix.Close(fd)
}

// diskUsed is the sum of st_blocks*512 over everything under dir (the dir
// included), like du -sB1. Files that vanish during the walk (evictions) are
// skipped.
func diskUsed(dir string) int64 {
	var total int64
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		var st syscall.Stat_t
		if syscall.Lstat(path, &st) == nil {
			total += st.Blocks * 512
		}
		return nil
	})
	return total
}

// storeDiskUsed is diskUsed of the store's directory, or -1 for a store that
// keeps its data in a server's memory (memcached).
func storeDiskUsed(st stores.Store, dir string) int64 {
	if serverPID(st) > 0 {
		return -1
	}
	return diskUsed(dir)
}

// fsMagic names filesystems by statfs f_type, for when mountinfo fails.
var fsMagic = map[int64]string{
	0xEF53:     "ext4",
	0x58465342: "xfs",
	0x9123683E: "btrfs",
	0x01021994: "tmpfs",
	0x858458f6: "ramfs",
	0x794c7630: "overlay",
	0x2fc12fc1: "zfs",
	0xF2F52010: "f2fs",
	0xca451a4e: "bcachefs",
	0x6969:     "nfs",
	0x65735546: "fuse",
	0x5346544e: "ntfs",
	0x4d44:     "vfat",
}

// fsType is the filesystem type of dir: the type of the mount that holds it
// in /proc/self/mountinfo (which tells ext4 from ext2/3 and names fuse
// filesystems), else statfs's f_type.
func fsType(dir string) string {
	abs, err := filepath.Abs(dir)
	if err == nil {
		if r, err := filepath.EvalSymlinks(abs); err == nil {
			abs = r
		}
		if t := mountFSType(abs); t != "" {
			return t
		}
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return "unknown"
	}
	if name, ok := fsMagic[int64(st.Type)]; ok {
		return name
	}
	return "0x" + strconv.FormatInt(int64(st.Type), 16)
}

func mountFSType(path string) string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	best, bestType := -1, ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint opts [optional...] - fstype source superopts
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		a, b := strings.Fields(pre), strings.Fields(post)
		if len(a) < 5 || len(b) < 1 {
			continue
		}
		mp := unescapeMount(a[4])
		if (path == mp || mp == "/" || strings.HasPrefix(path, mp+"/")) && len(mp) >= best {
			best, bestType = len(mp), b[0]
		}
	}
	return bestType
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// machineInfo describes this machine from /proc and /etc/os-release.
func machineInfo() Machine {
	m := Machine{Cores: runtime.NumCPU(), GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if n, err := procField("/proc/meminfo", "MemTotal"); err == nil {
		m.MemBytes = n << 10
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "PRETTY_NAME="); ok {
				if u, err := strconv.Unquote(v); err == nil {
					v = u
				}
				m.OS = v
			}
		}
	}
	return m
}
