package proxy

import (
	"testing"
	"time"
)

func TestBasicQuery(t *testing.T) {
	srv := requirePG(t)
	h := newHarness(t, srv, nil)
	ctx := ctxT(t, 20*time.Second)
	c := h.mustConnect(ctx, "")
	defer c.Close(ctx)
	var n int
	if err := c.QueryRow(ctx, "SELECT $1::int + 1", 41).Scan(&n); err != nil || n != 42 {
		t.Fatalf("got %d, %v", n, err)
	}
	for i := 0; i < 5; i++ {
		var s string
		if err := c.QueryRow(ctx, "SELECT 'x' || $1::int::text", i).Scan(&s); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
}
