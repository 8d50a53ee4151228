package stores

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"golang.org/x/sys/unix"
)

// Memcached is the Debian memcached server driven by
// github.com/bradfitz/gomemcache. The first Store opened on a Dir starts the
// server and writes its address to Dir/memcached.addr; Stores opened on the
// same Dir afterwards, in any process, connect to it.
var Memcached = Kind{
	Name:         "memcached",
	Open:         openMemcached,
	MultiProcess: true,
	Bounded:      true,
	Note: "memcached 1.6 on 127.0.0.1 TCP (-t 2, -U 0), gomemcache client with 64 idle connections; " +
		"values in RAM only (its \"disk used\" is RAM, -m is the bound, LRU), nothing survives a restart",
}

const (
	memcachedAddrFile = "memcached.addr"
	memcachedPIDFile  = "memcached.pid"
	memcachedLockFile = "memcached.lock"
	memcachedInstall  = "apt-get install -y memcached"
)

type memcachedStore struct {
	c   *memcache.Client
	dir string

	addr string
	pid  int

	// Set only when this Store started the server.
	cmd    *exec.Cmd
	exited chan struct{}

	closeOnce sync.Once
	closeErr  error
}

// ServerPID returns the memcached server's process ID.
func (s *memcachedStore) ServerPID() int { return s.pid }

func openMemcached(ctx context.Context, cfg Config) (Store, error) {
	s := &memcachedStore{dir: cfg.Dir}
	lock, err := os.OpenFile(filepath.Join(cfg.Dir, memcachedLockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("memcached: %w", err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return nil, fmt.Errorf("memcached: lock %s: %w", lock.Name(), err)
	}
	defer unix.Flock(int(lock.Fd()), unix.LOCK_UN)

	if addr, pid, ok := memcachedRunning(cfg.Dir); ok {
		s.addr, s.pid = addr, pid
	} else if err := s.start(ctx, cfg); err != nil {
		return nil, err
	}

	s.c = memcache.New(s.addr)
	s.c.MaxIdleConns = 64
	// Generous: a large value over a loaded loopback must not time out.
	s.c.Timeout = 10*time.Second + time.Duration(cfg.MaxValue/(1<<20))*time.Second
	return s, nil
}

// memcachedRunning reads the address a server started for dir left, and
// checks that it still accepts connections (its starter may have died).
func memcachedRunning(dir string) (addr string, pid int, ok bool) {
	b, err := os.ReadFile(filepath.Join(dir, memcachedAddrFile))
	if err != nil {
		return "", 0, false
	}
	addr = strings.TrimSpace(string(b))
	if addr == "" {
		return "", 0, false
	}
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", 0, false
	}
	conn.Close()
	if b, err := os.ReadFile(filepath.Join(dir, memcachedPIDFile)); err == nil {
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	return addr, pid, true
}

// memcachedBinary finds the memcached executable.
func memcachedBinary() (string, error) {
	if _, err := os.Stat("/usr/bin/memcached"); err == nil {
		return "/usr/bin/memcached", nil
	}
	p, err := exec.LookPath("memcached")
	if err != nil {
		return "", fmt.Errorf("memcached: the memcached binary is not installed (run: %s): %w", memcachedInstall, err)
	}
	return p, nil
}

// memcachedArgs chooses the item size limit and memory of a server for cfg.
func memcachedArgs(cfg Config) (itemLimit, memMB int64) {
	itemLimit = 1 << 20
	for itemLimit < int64(cfg.MaxValue)+1024 {
		itemLimit *= 2
	}
	if cfg.Capacity > 0 {
		memMB = max(64, cfg.Capacity>>20)
	} else {
		// Unbounded: memcached takes memory only as it fills, so a large
		// limit costs nothing until used.
		memMB = max(1024, memTotalMB()/4)
	}
	// memcached refuses an item limit over half its memory.
	memMB = max(memMB, 2*itemLimit>>20)
	return itemLimit, memMB
}

func memTotalMB() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "MemTotal:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb >> 10
		}
	}
	return 0
}

func (s *memcachedStore) start(ctx context.Context, cfg Config) error {
	bin, err := memcachedBinary()
	if err != nil {
		return err
	}
	itemLimit, memMB := memcachedArgs(cfg)
	var lastErr error
	for try := 0; try < 3; try++ {
		port, err := freePort()
		if err != nil {
			return fmt.Errorf("memcached: finding a free port: %w", err)
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		args := []string{
			"-l", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "0", "-t", "2",
			"-m", strconv.FormatInt(memMB, 10), "-I", strconv.FormatInt(itemLimit, 10),
		}
		if os.Geteuid() == 0 {
			args = append(args, "-u", "root") // memcached refuses root otherwise
		}
		cmd := exec.Command(bin, args...)
		var stderr bytes.Buffer
		cmd.Stdout = &stderr
		cmd.Stderr = &stderr
		// Stop the server if this process dies without Close.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("memcached: starting %s: %w", bin, err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()

		if err := waitListening(ctx, addr, exited); err != nil {
			cmd.Process.Kill()
			<-exited
			lastErr = fmt.Errorf("memcached: %s %s: %w (output: %q)", bin, strings.Join(args, " "), err, stderr.String())
			if ctx.Err() != nil {
				return lastErr
			}
			continue // most likely the port was taken meanwhile
		}
		s.cmd, s.exited, s.addr, s.pid = cmd, exited, addr, cmd.Process.Pid
		if err := writeFileAtomic(filepath.Join(cfg.Dir, memcachedPIDFile), strconv.Itoa(s.pid)+"\n"); err != nil {
			s.stop()
			return fmt.Errorf("memcached: %w", err)
		}
		if err := writeFileAtomic(filepath.Join(cfg.Dir, memcachedAddrFile), addr+"\n"); err != nil {
			s.stop()
			return fmt.Errorf("memcached: %w", err)
		}
		return nil
	}
	return lastErr
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitListening waits until addr accepts connections, the server exits, or
// ten seconds pass.
func waitListening(ctx context.Context, addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not accepting connections after 10s: %w", err)
		}
		select {
		case <-exited:
			return errors.New("server exited at start")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func writeFileAtomic(path, content string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// memcachedKey maps key to a legal memcached key (at most 250 bytes, no
// spaces or control characters): the key itself when legal, else "#" and
// its SHA-256 ("#" also marks legal keys that begin with it, so no two keys
// share a name).
func memcachedKey(key string) string {
	ok := len(key) > 0 && len(key) <= 250 && key[0] != '#'
	for i := 0; ok && i < len(key); i++ {
		if key[i] <= ' ' || key[i] == 0x7f {
			ok = false
		}
	}
	if ok {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return "#" + hex.EncodeToString(sum[:])
}

func (s *memcachedStore) Put(_ context.Context, key string, value []byte) error {
	return s.c.Set(&memcache.Item{Key: memcachedKey(key), Value: value})
}

func (s *memcachedStore) Get(_ context.Context, key string, buf []byte) ([]byte, error) {
	it, err := s.c.Get(memcachedKey(key))
	if errors.Is(err, memcache.ErrCacheMiss) {
		return buf[:0], ErrMiss
	}
	if err != nil {
		return buf[:0], err
	}
	return append(buf[:0], it.Value...), nil
}

func (s *memcachedStore) Delete(_ context.Context, key string) error {
	err := s.c.Delete(memcachedKey(key))
	if errors.Is(err, memcache.ErrCacheMiss) {
		return nil
	}
	return err
}

// Close closes the client's connections and, if this Store started the
// server, stops it and removes its address file.
func (s *memcachedStore) Close() error {
	s.closeOnce.Do(func() {
		s.closeErr = s.c.Close()
		if s.cmd != nil {
			s.closeErr = errors.Join(s.closeErr, s.stop())
		}
	})
	return s.closeErr
}

// stop removes the address file (so no new Store joins) and stops the
// server this Store started.
func (s *memcachedStore) stop() error {
	if b, err := os.ReadFile(filepath.Join(s.dir, memcachedAddrFile)); err == nil && strings.TrimSpace(string(b)) == s.addr {
		os.Remove(filepath.Join(s.dir, memcachedAddrFile))
		os.Remove(filepath.Join(s.dir, memcachedPIDFile))
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		return nil
	case <-time.After(5 * time.Second):
	}
	s.cmd.Process.Kill()
	<-s.exited
	return errors.New("memcached: server did not stop on SIGTERM; killed")
}
