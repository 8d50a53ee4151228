package possum

import (
	"context"
	"iter"

	"github.com/seed475afdc4/possum/manifest"
)

// listPage is how many entries List reads from the manifest at a time: each
// page is one short read transaction, so a long listing never holds one open
// (which would keep the WAL from being checkpointed) while the caller works.
const listPage = 256

// List streams the keys that start with prefix, in byte order, with their
// values' descriptions. Expired keys are left out. The listing is read in
// pages: every key present for the whole listing appears exactly once; keys
// put or deleted while it runs may or may not. The caller may use the cache,
// writes included, inside the loop. Reading stops at the first error, which
// is yielded.
func (c *Cache) List(ctx context.Context, prefix string) iter.Seq2[Info, error] {
	return func(yield func(Info, error) bool) {
		lo, hi := []byte(prefix), prefixEnd(prefix)
		var after []byte
		for {
			page, err := c.listPage(ctx, lo, hi, after)
			if err != nil {
				yield(Info{}, opErr("list", prefix, err))
				return
			}
			for i := range page {
				if !yield(entryInfo(&page[i]), nil) {
					return
				}
			}
			if len(page) < listPage {
				return
			}
			after = page[len(page)-1].Key
		}
	}
}

func (c *Cache) listPage(ctx context.Context, lo, hi, after []byte) ([]manifest.Entry, error) {
	if err := c.enter(); err != nil {
		return nil, err
	}
	defer c.mu.RUnlock()
	return c.m.List(ctx, lo, hi, after, c.opts.now().UnixNano(), listPage)
}
