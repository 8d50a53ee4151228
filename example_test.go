package possum_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log"
	"os"
	"strings"

	"github.com/seed475afdc4/possum"
)

func Example() {
	dir, _ := os.MkdirTemp("", "possum-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()

	c, err := possum.Open(dir, &possum.Options{Capacity: 64 << 20})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	if err := c.PutBytes(ctx, "greeting", []byte("hello, world")); err != nil {
		log.Fatal(err)
	}
	v, err := c.Get(ctx, "greeting")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(v))

	if _, err := c.Get(ctx, "absent"); errors.Is(err, fs.ErrNotExist) {
		fmt.Println("absent: miss")
	}
	// Output:
	// hello, world
	// absent: miss
}

// Put streams a value of any length from an io.Reader: the key is
// published only once every byte is written.
func ExampleCache_Put() {
	dir, _ := os.MkdirTemp("", "possum-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	c, _ := possum.Open(dir, nil)
	defer c.Close()

	n, err := c.Put(ctx, "doc", strings.NewReader(strings.Repeat("possum ", 100_000)))
	if err != nil {
		log.Fatal(err)
	}
	info, _ := c.Stat(ctx, "doc")
	fmt.Println(n, info.Size)
	// Output: 700000 700000
}

// A Batch publishes several changes atomically.
func ExampleBatch() {
	dir, _ := os.MkdirTemp("", "possum-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	c, _ := possum.Open(dir, nil)
	defer c.Close()

	c.PutBytes(ctx, "pieces/unverified/1", []byte("chunk one"))
	b := c.NewBatch()
	b.PutBytes(ctx, "pieces/unverified/2", []byte("chunk two"))
	b.Rename("pieces/unverified/1", "pieces/verified/1")
	if err := b.Commit(ctx); err != nil {
		log.Fatal(err)
	}
	for info, err := range c.List(ctx, "pieces/") {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(info.Key, info.Size)
	}
	// Output:
	// pieces/unverified/2 9
	// pieces/verified/1 9
}

// The capacity is shared by every process using the directory; eviction
// keeps the cache within it.
func ExampleCache_SetCapacity() {
	dir, _ := os.MkdirTemp("", "possum-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	c, _ := possum.Open(dir, nil)
	defer c.Close()

	for i := range 20 {
		c.PutBytes(ctx, fmt.Sprint("k", i), make([]byte, 256<<10))
	}
	if err := c.SetCapacity(ctx, 2<<20); err != nil {
		log.Fatal(err)
	}
	st := c.Stats()
	fmt.Println(st.Used <= st.Capacity, st.Entries < 20)
	// Output: true true
}
