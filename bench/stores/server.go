package stores

// Server is implemented by stores that run a server process of their own
// (memcached), so that the runner can add the server's /proc/PID/io
// write_bytes and its RSS to what the client process used. ServerPID is 0
// when the PID is not known.
type Server interface {
	ServerPID() int
}
